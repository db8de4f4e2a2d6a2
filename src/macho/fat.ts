import { FormatError } from '../errors.js';
import { FAT_MAGIC, FAT_MAGIC_64, archName } from './macho-constants.js';
import { u32be, u64be } from './macho-bytes.js';

// Fat (universal) files: struct fat_header, then fat_arch (or fat_arch_64) records, all
// big-endian (mach-o/fat.h). Each slice is a whole Mach-O at its offset.

export interface FatArch {
  cputype: number;
  cpusubtype: number;
  offset: bigint;
  size: bigint;
  align: number;
  reserved?: number;
  /** arm64, arm64e, x86_64 ... */
  arch: string;
}

export interface FatFile {
  magic: number;
  arches: FatArch[];
}

/** More slices than any real universal binary has: the file is something else (or garbage). */
const MAX_FAT_ARCHES = 64;

export function isFat(b: Uint8Array): boolean {
  if (b.length < 8) return false;
  const m = u32be(b, 0);
  // Java class files share 0xcafebabe; their "nfat_arch" (the class version) is large.
  return (m === FAT_MAGIC || m === FAT_MAGIC_64) && u32be(b, 4) <= MAX_FAT_ARCHES;
}

export function parseFat(b: Uint8Array): FatFile {
  if (b.length < 8) throw new FormatError('fat_header', 0n, 'file shorter than the fat header');
  const magic = u32be(b, 0);
  if (magic !== FAT_MAGIC && magic !== FAT_MAGIC_64) throw new FormatError('fat_header', 0n, `bad magic 0x${magic.toString(16)}`);
  const n = u32be(b, 4);
  if (n > MAX_FAT_ARCHES) throw new FormatError('fat_header', 4n, `nfat_arch ${n} is absurd`);
  const is64 = magic === FAT_MAGIC_64;
  const rec = is64 ? 32 : 20;
  if (8 + n * rec > b.length) throw new FormatError('fat_arch', 8n, `${n} records run past the end of the file`);
  const arches: FatArch[] = [];
  for (let i = 0; i < n; i++) {
    const o = 8 + i * rec;
    const cputype = u32be(b, o);
    const cpusubtype = u32be(b, o + 4);
    const offset = is64 ? u64be(b, o + 8) : BigInt(u32be(b, o + 8));
    const size = is64 ? u64be(b, o + 16) : BigInt(u32be(b, o + 12));
    const align = u32be(b, is64 ? o + 24 : o + 16);
    if (offset + size > BigInt(b.length) || offset < BigInt(8 + n * rec)) {
      throw new FormatError(is64 ? 'fat_arch_64' : 'fat_arch', BigInt(o), `slice ${i} (0x${offset.toString(16)} + 0x${size.toString(16)}) is outside the file`);
    }
    if (align > 31) throw new FormatError(is64 ? 'fat_arch_64' : 'fat_arch', BigInt(o), `align 2^${align} is absurd`);
    arches.push({ cputype, cpusubtype, offset, size, align, reserved: is64 ? u32be(b, o + 28) : undefined, arch: archName(cputype, cpusubtype) });
  }
  const sorted = [...arches].sort((a, c) => (a.offset < c.offset ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.offset < sorted[i - 1]!.offset + sorted[i - 1]!.size) throw new FormatError('fat_arch', 8n, `slices ${sorted[i - 1]!.arch} and ${sorted[i]!.arch} overlap`);
  }
  return { magic, arches };
}

/** The bytes of one slice (zero-copy). */
export function fatSlice(b: Uint8Array, a: FatArch): Uint8Array {
  return b.subarray(Number(a.offset), Number(a.offset + a.size));
}
