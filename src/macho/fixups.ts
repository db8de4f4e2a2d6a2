import { FormatError } from '../errors.js';
import { cString, u16, u32, u64 } from './macho-bytes.js';
import { chainedFixupsCommand, headerVmaddr, type MachO } from './macho.js';

// LC_DYLD_CHAINED_FIXUPS: the header, per-segment page starts, the imports table, and a walk of
// every chain, each slot decoded to a rebase or bind (with pointer-auth data where present).
// Structures and pointer formats: mach-o/fixup-chains.h.

// mach-o/fixup-chains.h pointer formats (the 64-bit ones m1prep decodes)
export const DYLD_CHAINED_PTR_ARM64E = 1;
export const DYLD_CHAINED_PTR_64 = 2;
export const DYLD_CHAINED_PTR_64_OFFSET = 6;
export const DYLD_CHAINED_PTR_ARM64E_KERNEL = 7;
export const DYLD_CHAINED_PTR_64_KERNEL_CACHE = 8;
export const DYLD_CHAINED_PTR_ARM64E_USERLAND = 9;
export const DYLD_CHAINED_PTR_ARM64E_FIRMWARE = 10;
export const DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE = 11;
export const DYLD_CHAINED_PTR_ARM64E_USERLAND24 = 12;

export const POINTER_FORMAT_NAMES: Record<number, string> = {
  1: 'DYLD_CHAINED_PTR_ARM64E', 2: 'DYLD_CHAINED_PTR_64', 3: 'DYLD_CHAINED_PTR_32', 4: 'DYLD_CHAINED_PTR_32_CACHE',
  5: 'DYLD_CHAINED_PTR_32_FIRMWARE', 6: 'DYLD_CHAINED_PTR_64_OFFSET', 7: 'DYLD_CHAINED_PTR_ARM64E_KERNEL',
  8: 'DYLD_CHAINED_PTR_64_KERNEL_CACHE', 9: 'DYLD_CHAINED_PTR_ARM64E_USERLAND', 10: 'DYLD_CHAINED_PTR_ARM64E_FIRMWARE',
  11: 'DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE', 12: 'DYLD_CHAINED_PTR_ARM64E_USERLAND24', 13: 'DYLD_CHAINED_PTR_ARM64E_SHARED_CACHE',
};

// mach-o/fixup-chains.h
export const DYLD_CHAINED_PTR_START_NONE = 0xffff;
export const DYLD_CHAINED_PTR_START_MULTI = 0x8000;
export const DYLD_CHAINED_PTR_START_LAST = 0x8000;
export const DYLD_CHAINED_IMPORT = 1;
export const DYLD_CHAINED_IMPORT_ADDEND = 2;
export const DYLD_CHAINED_IMPORT_ADDEND64 = 3;

/** sizeof(struct dyld_chained_fixups_header) */
export const DYLD_CHAINED_FIXUPS_HEADER_SIZE = 28;

/** Bytes between chain entries per `next` unit (fixup-chains.h comments on each format). */
export function chainStride(format: number): number {
  switch (format) {
    case DYLD_CHAINED_PTR_ARM64E:
    case DYLD_CHAINED_PTR_ARM64E_USERLAND:
    case DYLD_CHAINED_PTR_ARM64E_USERLAND24:
      return 8;
    case DYLD_CHAINED_PTR_64:
    case DYLD_CHAINED_PTR_64_OFFSET:
    case DYLD_CHAINED_PTR_ARM64E_KERNEL:
    case DYLD_CHAINED_PTR_64_KERNEL_CACHE:
    case DYLD_CHAINED_PTR_ARM64E_FIRMWARE:
      return 4;
    case DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE:
      return 1;
    default:
      return 0;
  }
}

/** struct dyld_chained_fixups_header */
export interface ChainedFixupsHeader {
  fixups_version: number;
  starts_offset: number;
  imports_offset: number;
  symbols_offset: number;
  imports_count: number;
  imports_format: number;
  symbols_format: number;
}

/** struct dyld_chained_starts_in_segment, with the chain starts of each page expanded. */
export interface ChainedStartsInSegment {
  segIndex: number;
  size: number;
  page_size: number;
  pointer_format: number;
  segment_offset: bigint;
  max_valid_pointer: number;
  page_count: number;
  /** Per page: offsets in the page where chains start (several with DYLD_CHAINED_PTR_START_MULTI). */
  pageStarts: number[][];
}

export interface ChainedImport {
  lib_ordinal: number;
  weak_import: boolean;
  name: string;
  addend: bigint;
}

export interface PointerAuth {
  key: number;
  diversity: number;
  addrDiv: boolean;
}

export interface ChainedFixup {
  /** vmaddr of the slot. */
  address: bigint;
  /** Offset of the slot in the buffer (m.bytes). */
  fileOffset: number;
  segIndex: number;
  format: number;
  raw: bigint;
  kind: 'rebase' | 'bind';
  /** Rebase: the unslid address it points at. */
  target?: bigint;
  /** The raw target field (a vmaddr or an offset, depending on the format). */
  targetField?: bigint;
  high8?: number;
  /** Bind: index into the imports table, and the addend carried in the pointer. */
  ordinal?: number;
  addend?: bigint;
  auth?: PointerAuth;
  /** DYLD_CHAINED_PTR_64_KERNEL_CACHE: which collection the target is in (0 = this one). */
  cacheLevel?: number;
  next: number;
}

export interface ChainedFixups {
  dataoff: number;
  header: ChainedFixupsHeader;
  segments: ChainedStartsInSegment[];
  imports: ChainedImport[];
}

const bits = (v: bigint, lo: number, n: number): bigint => (v >> BigInt(lo)) & ((1n << BigInt(n)) - 1n);

export function parseChainedFixups(m: MachO): ChainedFixups | undefined {
  const lc = chainedFixupsCommand(m);
  if (!lc || lc.datasize === 0) return undefined;
  const b = m.bytes;
  const base = lc.dataoff;
  const end = base + lc.datasize;
  const S = 'dyld_chained_fixups_header';
  if (lc.datasize < DYLD_CHAINED_FIXUPS_HEADER_SIZE) throw new FormatError(S, BigInt(base), `datasize ${lc.datasize} is smaller than the header`);
  const header: ChainedFixupsHeader = {
    fixups_version: u32(b, base), starts_offset: u32(b, base + 4), imports_offset: u32(b, base + 8),
    symbols_offset: u32(b, base + 12), imports_count: u32(b, base + 16), imports_format: u32(b, base + 20),
    symbols_format: u32(b, base + 24),
  };
  if (header.fixups_version !== 0) throw new FormatError(S, BigInt(base), `fixups_version ${header.fixups_version} (expected 0)`);
  const segments = parseStarts(m, base, end, header.starts_offset);
  const imports = parseImports(b, base, end, header);
  return { dataoff: base, header, segments, imports };
}

function parseStarts(m: MachO, base: number, end: number, startsOffset: number): ChainedStartsInSegment[] {
  const b = m.bytes;
  const S = 'dyld_chained_starts_in_image';
  const img = base + startsOffset;
  if (startsOffset === 0 && end - base <= DYLD_CHAINED_FIXUPS_HEADER_SIZE) return [];
  if (img + 4 > end) throw new FormatError(S, BigInt(img), 'starts_offset outside the fixups data');
  const segCount = u32(b, img);
  if (img + 4 + segCount * 4 > end) throw new FormatError(S, BigInt(img), `seg_count ${segCount} runs past the fixups data`);
  if (segCount > m.segments.length) throw new FormatError(S, BigInt(img), `seg_count ${segCount} exceeds the ${m.segments.length} segments`);
  const out: ChainedStartsInSegment[] = [];
  for (let i = 0; i < segCount; i++) {
    const so = u32(b, img + 4 + 4 * i);
    if (so === 0) continue;
    const s = img + so;
    const SS = 'dyld_chained_starts_in_segment';
    if (s + 22 > end) throw new FormatError(SS, BigInt(s), 'runs past the fixups data');
    const size = u32(b, s);
    const page_size = u16(b, s + 4);
    const pointer_format = u16(b, s + 6);
    const page_count = u16(b, s + 20);
    if (s + 22 + page_count * 2 > end) throw new FormatError(SS, BigInt(s), `page_count ${page_count} runs past the fixups data`);
    if (page_size === 0) throw new FormatError(SS, BigInt(s), 'page_size is 0');
    const pageStarts: number[][] = [];
    for (let p = 0; p < page_count; p++) {
      const ps = u16(b, s + 22 + 2 * p);
      if (ps === DYLD_CHAINED_PTR_START_NONE) { pageStarts.push([]); continue; }
      if (ps & DYLD_CHAINED_PTR_START_MULTI) {
        // Overflow list: offsets follow page_start[], the last one flagged.
        const starts: number[] = [];
        let idx = ps & ~DYLD_CHAINED_PTR_START_MULTI;
        for (let guard = 0; ; guard++) {
          const at = s + 22 + 2 * idx;
          if (at + 2 > end || guard > page_size) throw new FormatError(SS, BigInt(at), 'multi-start list runs past the fixups data');
          const v = u16(b, at);
          starts.push(v & ~DYLD_CHAINED_PTR_START_LAST);
          if (v & DYLD_CHAINED_PTR_START_LAST) break;
          idx++;
        }
        pageStarts.push(starts);
      } else {
        pageStarts.push([ps]);
      }
    }
    out.push({ segIndex: i, size, page_size, pointer_format, segment_offset: u64(b, s + 8), max_valid_pointer: u32(b, s + 16), page_count, pageStarts });
  }
  return out;
}

function parseImports(b: Uint8Array, base: number, end: number, h: ChainedFixupsHeader): ChainedImport[] {
  const S = 'dyld_chained_import';
  const entry = h.imports_format === DYLD_CHAINED_IMPORT ? 4 : h.imports_format === DYLD_CHAINED_IMPORT_ADDEND ? 8 : h.imports_format === DYLD_CHAINED_IMPORT_ADDEND64 ? 16 : 0;
  if (h.imports_count === 0) return [];
  if (entry === 0) throw new FormatError(S, BigInt(base + 20), `unknown imports_format ${h.imports_format}`);
  if (h.symbols_format !== 0) throw new FormatError(S, BigInt(base + 24), `symbols_format ${h.symbols_format} (compressed names) is not supported`);
  const at = base + h.imports_offset;
  if (at + h.imports_count * entry > end) throw new FormatError(S, BigInt(at), `${h.imports_count} imports run past the fixups data`);
  const syms = base + h.symbols_offset;
  const out: ChainedImport[] = new Array(h.imports_count);
  for (let i = 0; i < h.imports_count; i++) {
    const o = at + i * entry;
    let lib_ordinal: number;
    let weak: boolean;
    let nameOff: number;
    let addend = 0n;
    if (entry === 16) {
      const v = u64(b, o);
      lib_ordinal = Number(BigInt.asIntN(16, bits(v, 0, 16)));
      weak = bits(v, 16, 1) === 1n;
      nameOff = Number(bits(v, 32, 32));
      addend = BigInt.asIntN(64, u64(b, o + 8));
    } else {
      const v = u32(b, o);
      lib_ordinal = ((v & 0xff) << 24) >> 24;
      weak = ((v >>> 8) & 1) === 1;
      nameOff = v >>> 9;
      if (entry === 8) addend = BigInt((u32(b, o + 4) << 0) | 0);
    }
    out[i] = { lib_ordinal, weak_import: weak, name: cString(b, syms + nameOff, end, `${S} name`), addend };
  }
  return out;
}

/** Decode one 64-bit chain entry of `format`. imageBase turns offset targets into addresses. */
export function decodeChainedPointer(format: number, raw: bigint, imageBase: bigint): Omit<ChainedFixup, 'address' | 'fileOffset' | 'segIndex'> {
  switch (format) {
    case DYLD_CHAINED_PTR_ARM64E:
    case DYLD_CHAINED_PTR_ARM64E_KERNEL:
    case DYLD_CHAINED_PTR_ARM64E_USERLAND:
    case DYLD_CHAINED_PTR_ARM64E_FIRMWARE:
    case DYLD_CHAINED_PTR_ARM64E_USERLAND24: {
      const next = Number(bits(raw, 51, 11));
      const isBind = bits(raw, 62, 1) === 1n;
      const isAuth = bits(raw, 63, 1) === 1n;
      const auth = isAuth ? { diversity: Number(bits(raw, 32, 16)), addrDiv: bits(raw, 48, 1) === 1n, key: Number(bits(raw, 49, 2)) } : undefined;
      if (isBind) {
        const ordinal = Number(bits(raw, 0, format === DYLD_CHAINED_PTR_ARM64E_USERLAND24 ? 24 : 16));
        const addend = isAuth ? 0n : BigInt.asIntN(19, bits(raw, 32, 19));
        return { format, raw, kind: 'bind', ordinal, addend, auth, next };
      }
      if (isAuth) {
        const t = bits(raw, 0, 32);
        return { format, raw, kind: 'rebase', targetField: t, target: imageBase + t, auth, next };
      }
      const t = bits(raw, 0, 43);
      const high8 = Number(bits(raw, 43, 8));
      // ARM64E and ARM64E_FIRMWARE carry a vmaddr; the KERNEL and USERLAND formats an offset.
      const absolute = format === DYLD_CHAINED_PTR_ARM64E || format === DYLD_CHAINED_PTR_ARM64E_FIRMWARE;
      return { format, raw, kind: 'rebase', targetField: t, target: (absolute ? t : imageBase + t) | (BigInt(high8) << 56n), high8, next };
    }
    case DYLD_CHAINED_PTR_64:
    case DYLD_CHAINED_PTR_64_OFFSET: {
      const next = Number(bits(raw, 51, 12));
      if (bits(raw, 63, 1) === 1n) {
        return { format, raw, kind: 'bind', ordinal: Number(bits(raw, 0, 24)), addend: bits(raw, 24, 8), next };
      }
      const t = bits(raw, 0, 36);
      const high8 = Number(bits(raw, 36, 8));
      const target = (format === DYLD_CHAINED_PTR_64 ? t : imageBase + t) | (BigInt(high8) << 56n);
      return { format, raw, kind: 'rebase', targetField: t, target, high8, next };
    }
    case DYLD_CHAINED_PTR_64_KERNEL_CACHE:
    case DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE: {
      const t = bits(raw, 0, 30);
      const isAuth = bits(raw, 63, 1) === 1n;
      const cacheLevel = Number(bits(raw, 30, 2));
      const auth = isAuth ? { diversity: Number(bits(raw, 32, 16)), addrDiv: bits(raw, 48, 1) === 1n, key: Number(bits(raw, 49, 2)) } : undefined;
      return { format, raw, kind: 'rebase', targetField: t, target: imageBase + t, cacheLevel, auth, next: Number(bits(raw, 51, 12)) };
    }
    default:
      throw new FormatError('dyld_chained_starts_in_segment', 0n, `pointer_format ${format} (${POINTER_FORMAT_NAMES[format] ?? 'unknown'}) is not supported`);
  }
}

/**
 * Walk every chain. imageBase: the address offsets are relative to (the mach header's vmaddr; for
 * a kernel collection, its base). A chain that leaves its page or the file is a FormatError.
 */
export function walkChainedFixups(m: MachO, fx: ChainedFixups | undefined = parseChainedFixups(m), imageBase = headerVmaddr(m) ?? 0n): ChainedFixup[] {
  if (!fx) return [];
  const out: ChainedFixup[] = [];
  for (const s of fx.segments) out.push(...walkSegmentChains(m, s, imageBase, fx.imports.length));
  return out;
}

/**
 * The chains of one segment. `onlyFileRange` limits the walk to pages overlapping [start, end) of
 * the file (extracting one kext from a large collection walks only that kext's pages).
 */
export function walkSegmentChains(m: MachO, s: ChainedStartsInSegment, imageBase: bigint, importCount: number, onlyFileRange?: [bigint, bigint]): ChainedFixup[] {
  const seg = m.segments[s.segIndex]!;
  const stride = chainStride(s.pointer_format);
  const S = 'fixup chain';
  if (stride === 0) throw new FormatError('dyld_chained_starts_in_segment', BigInt(m.headerOffset), `pointer_format ${s.pointer_format} (${POINTER_FORMAT_NAMES[s.pointer_format] ?? 'unknown'}) is not supported`);
  const out: ChainedFixup[] = [];
  const b = m.bytes;
  for (let p = 0; p < s.pageStarts.length; p++) {
    if (onlyFileRange) {
      const pageStart = seg.fileoff + BigInt(p) * BigInt(s.page_size);
      if (pageStart >= onlyFileRange[1] || pageStart + BigInt(s.page_size) <= onlyFileRange[0]) continue;
    }
    for (const start of s.pageStarts[p]!) {
      let inPage = start;
      // next > 0 always moves forward inside one page, so a chain has at most page_size/stride links.
      for (let guard = 0; guard <= s.page_size; guard++) {
        const segOff = BigInt(p) * BigInt(s.page_size) + BigInt(inPage);
        if (inPage + 8 > s.page_size || segOff + 8n > seg.filesize) {
          throw new FormatError(S, seg.fileoff + segOff, `chain entry at page ${p} offset 0x${inPage.toString(16)} runs off the page or segment ${seg.segname}`);
        }
        const fileOffset = Number(seg.fileoff + segOff);
        const raw = u64(b, fileOffset);
        const d = decodeChainedPointer(s.pointer_format, raw, imageBase);
        if (d.kind === 'bind' && d.ordinal! >= importCount) {
          throw new FormatError(S, BigInt(fileOffset), `bind ordinal ${d.ordinal} beyond the ${importCount} imports`);
        }
        out.push({ ...d, address: seg.vmaddr + segOff, fileOffset, segIndex: s.segIndex });
        if (d.next === 0) break;
        inPage += d.next * stride;
        if (inPage >= s.page_size) throw new FormatError(S, BigInt(fileOffset), `next link leaves the ${s.page_size}-byte page`);
        if (guard === s.page_size) throw new FormatError(S, BigInt(fileOffset), 'chain longer than its page');
      }
    }
  }
  return out;
}

/** The pointer formats an image's chains use (for `info`). */
export function chainedFormats(fx: ChainedFixups | undefined): number[] {
  return fx ? [...new Set(fx.segments.map((s) => s.pointer_format))] : [];
}
