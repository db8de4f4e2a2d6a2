import { FormatError, UsageError } from '../errors.js';
import { openContainer, type OpenedContainer } from './container.js';
import { isFat, parseFat, fatSlice, type FatArch, type FatFile } from './fat.js';
import { isMachO64, parseMachO, serializeMachO, type MachO } from './macho.js';
import { CPU_SUBTYPE_ARM64E, CPU_SUBTYPE_MASK, CPU_TYPE_ARM64, archName } from './macho-constants.js';

// From a file as shipped to a Mach-O view: peel containers (IMG4/IM4P, LZFSE, complzss), pick a
// fat slice, parse. What the CLI commands share.

export interface OpenedMachO {
  /** The file as given. */
  input: Uint8Array;
  container: OpenedContainer;
  fat?: FatFile;
  slice?: FatArch;
  /** The Mach-O (undefined if the payload is something else). */
  macho?: MachO;
}

/** Which slice to use by default: the one matching `arch`, else arm64e, else arm64, else the first. */
export function pickSlice(fat: FatFile, arch?: string): FatArch {
  if (arch) {
    const a = fat.arches.find((x) => x.arch === arch);
    if (!a) throw new UsageError(`no ${arch} slice (this file has ${fat.arches.map((x) => x.arch).join(', ')})`);
    return a;
  }
  const sub = (x: FatArch) => x.cpusubtype & ~CPU_SUBTYPE_MASK;
  return fat.arches.find((x) => x.cputype === CPU_TYPE_ARM64 && sub(x) === CPU_SUBTYPE_ARM64E)
    ?? fat.arches.find((x) => x.cputype === CPU_TYPE_ARM64)
    ?? fat.arches[0]!;
}

export function openMachO(bytes: Uint8Array, opts: { arch?: string; requireMachO?: boolean } = {}): OpenedMachO {
  const container = openContainer(bytes);
  const p = container.payload;
  if (isFat(p)) {
    const fat = parseFat(p);
    if (fat.arches.length === 0) throw new FormatError('fat_header', 4n, 'no slices');
    const slice = pickSlice(fat, opts.arch);
    return { input: bytes, container, fat, slice, macho: parseMachO(fatSlice(p, slice)) };
  }
  if (isMachO64(p) || opts.requireMachO) {
    const m = parseMachO(p);
    const arch = archName(m.header.cputype, m.header.cpusubtype);
    if (opts.arch && opts.arch !== arch) throw new UsageError(`--arch ${opts.arch}: this is a thin ${arch} file`);
    return { input: bytes, container, macho: m };
  }
  return { input: bytes, container };
}

/**
 * The file again after the Mach-O view was (possibly) edited: re-serialized, put back in its fat
 * slice, and wrapped by the same container layers. When nothing changed this is the input itself
 * (Apple's LZFSE output is not what our encoder would produce, so re-compressing is avoided).
 */
export function writeBack(o: OpenedMachO): Uint8Array {
  if (!o.macho) throw new FormatError('mach_header_64', 0n, 'not a Mach-O');
  const thin = serializeMachO(o.macho);
  const original = o.fat && o.slice ? fatSlice(o.container.payload, o.slice) : o.container.payload;
  if (Buffer.compare(thin, original) === 0) return o.input;
  let payload = thin;
  if (o.fat && o.slice) {
    if (BigInt(thin.length) !== o.slice.size) throw new FormatError('fat_arch', 0n, 'slice size changed');
    payload = o.container.payload.slice();
    payload.set(thin, Number(o.slice.offset));
  }
  return o.container.layers.length === 0 ? payload : o.container.repack(payload);
}
