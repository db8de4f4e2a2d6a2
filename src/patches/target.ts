import { FormatError } from '../errors.js';
import { filesetEntries, isFileset, openEntry, KERNEL_ENTRY_ID } from '../macho/fileset.js';
import { walkChainedFixups, type ChainedFixup } from '../macho/fixups.js';
import { findDarwinVersion } from '../macho/macho-darwin-version.js';
import { imageBase, parseMachO, type MachO } from '../macho/macho.js';
import { isUndefined, parseSymtab } from '../macho/symtab.js';

// What the patch engine sees of a kernel collection: one PatchTarget per image (the kernel,
// each kext), all sharing the collection's bytes, filled from src/macho's views. The engine
// works the same on an MH_FILESET collection, a single MH_EXECUTE kernel or a single kext.

export const KERNEL_ID = KERNEL_ENTRY_ID;

// mach-o/loader.h
const MH_EXECUTE = 0x2;
const MH_KEXT_BUNDLE = 0xb;
const S_ATTR_PURE_INSTRUCTIONS = 0x80000000;
const S_ATTR_SOME_INSTRUCTIONS = 0x400;
const VM_PROT_EXECUTE = 4;
// mach/machine.h
const CPU_TYPE_ARM64 = 0x0100000c;
const CPU_SUBTYPE_ARM64E = 2;

export interface SectionView {
  segname: string;
  sectname: string;
  addr: bigint;
  size: bigint;
  /** File offset in the collection. */
  offset: bigint;
  code: boolean;
}

export interface SegmentView {
  segname: string;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: bigint;
  filesize: bigint;
  executable: boolean;
  sections: SectionView[];
}

export interface PatchTarget {
  /** Bundle id, or com.apple.kernel. */
  id: string;
  /** The whole collection (shared by every target). */
  bytes: Uint8Array;
  segments: SegmentView[];
  symbols: Map<string, bigint>;
}

export interface Collection {
  bytes: Uint8Array;
  arch: 'arm64' | 'arm64e' | 'other';
  targets: Map<string, PatchTarget>;
  /** "21.4.0", from the kernel's "Darwin Kernel Version" string; null if not found. */
  darwin: string | null;
  /** Lowest segment vmaddr of the collection (the base chained-fixup offsets count from). */
  baseVmaddr: bigint;
  /** Every chained-fixup entry of the collection, walked on first use. */
  chains(): ChainedFixup[];
}

function segmentsOf(m: MachO): SegmentView[] {
  return m.segments.map((s) => ({
    segname: s.segname, vmaddr: s.vmaddr, vmsize: s.vmsize, fileoff: s.fileoff, filesize: s.filesize,
    executable: (s.initprot & VM_PROT_EXECUTE) !== 0,
    sections: s.sections.map((c) => ({
      segname: c.segname, sectname: c.sectname, addr: c.addr, size: c.size, offset: BigInt(c.offset),
      code: (c.flags & (S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS)) !== 0,
    })),
  }));
}

function symbolsOf(m: MachO): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const s of parseSymtab(m)) {
    if ((s.n_type & 0xe0) !== 0 || isUndefined(s) || s.name === '') continue; // stabs, imports
    out.set(s.name, s.n_value);
  }
  return out;
}

function targetOf(id: string, m: MachO): PatchTarget {
  const segments = segmentsOf(m);
  for (const s of segments) {
    if (s.fileoff + s.filesize > BigInt(m.bytes.length)) {
      throw new FormatError(`${id} segment ${s.segname}`, BigInt(m.headerOffset), 'extends past the end of the file');
    }
  }
  return { id, bytes: m.bytes, segments, symbols: symbolsOf(m) };
}

/** Build the engine's view of a kernel collection (or a single kernel / kext Mach-O). */
export function openCollection(bytes: Uint8Array, singleId = KERNEL_ID): Collection {
  const top = parseMachO(bytes);
  const targets = new Map<string, PatchTarget>();
  if (isFileset(top)) {
    for (const e of filesetEntries(top)) targets.set(e.id, targetOf(e.id, openEntry(top, e)));
  } else if (top.header.filetype === MH_EXECUTE || top.header.filetype === MH_KEXT_BUNDLE) {
    targets.set(singleId, targetOf(singleId, top));
  } else {
    throw new FormatError('mach_header_64', 12n, `filetype 0x${top.header.filetype.toString(16)} is not a kernel collection, kernel or kext`);
  }
  const kernel = isFileset(top) ? targets.get(KERNEL_ID) : targets.get(singleId);
  const kernelMachO = isFileset(top) ? (() => {
    const e = filesetEntries(top).find((x) => x.id === KERNEL_ID);
    return e ? openEntry(top, e) : top;
  })() : top;
  const dv = kernel ? findDarwinVersion(kernelMachO) : undefined;
  const base = imageBase(top);
  const arch = top.header.cputype !== CPU_TYPE_ARM64 ? 'other' : (top.header.cpusubtype & 0xff) === CPU_SUBTYPE_ARM64E ? 'arm64e' : 'arm64';
  let chains: ChainedFixup[] | undefined;
  return {
    bytes, arch, targets, baseVmaddr: base,
    darwin: dv ? `${dv.major}.${dv.minor}.${dv.patch}` : null,
    chains: () => (chains ??= walkChainedFixups(top, undefined, base)),
  };
}

/** File offset of a virtual address inside a target, or undefined if it is not file-backed. */
export function vmToOffset(t: PatchTarget, vm: bigint): bigint | undefined {
  for (const s of t.segments) {
    if (vm >= s.vmaddr && vm < s.vmaddr + s.filesize) return s.fileoff + (vm - s.vmaddr);
  }
  return undefined;
}

export function offsetToVm(t: PatchTarget, off: bigint): bigint | undefined {
  for (const s of t.segments) {
    if (off >= s.fileoff && off < s.fileoff + s.filesize && s.vmsize > 0n) return s.vmaddr + (off - s.fileoff);
  }
  return undefined;
}

/** A contiguous file range to search, with the vmaddr of its first byte. */
export interface Range {
  start: number;
  end: number;
  vmaddr: bigint;
  label: string;
}

/** Ranges of a target matching an optional segment/section scope; `codeOnly` keeps executable ones. */
export function scopeRanges(t: PatchTarget, segment: string | undefined, section: string | undefined, codeOnly: boolean): Range[] {
  const out: Range[] = [];
  for (const s of t.segments) {
    if (segment !== undefined && s.segname !== segment) continue;
    if (section !== undefined || (codeOnly && s.sections.length > 0)) {
      for (const c of s.sections) {
        if (section !== undefined && c.sectname !== section) continue;
        if (codeOnly && section === undefined && !c.code) continue;
        if (c.offset === 0n || c.size === 0n) continue;
        out.push({ start: Number(c.offset), end: Number(c.offset + c.size), vmaddr: c.addr, label: `${c.segname},${c.sectname}` });
      }
      continue;
    }
    if (codeOnly && !s.executable) continue;
    if (s.filesize === 0n) continue;
    out.push({ start: Number(s.fileoff), end: Number(s.fileoff + s.filesize), vmaddr: s.vmaddr, label: s.segname });
  }
  return out;
}
