import { FormatError, PatchError } from '../errors.js';
import type { Collection } from './target.js';

// Pointer slots in a chained-fixup image hold an encoded chain entry, not an address
// (mach-o/fixup-chains.h). A patch that redirects a pointer must re-encode the entry's target
// and keep its chain link (`next`), authentication bits and diversity, or dyld / the kernel's
// fixup walker would follow a broken chain.

// mach-o/fixup-chains.h pointer formats
export const DYLD_CHAINED_PTR_ARM64E = 1;
export const DYLD_CHAINED_PTR_64 = 2;
export const DYLD_CHAINED_PTR_64_OFFSET = 6;
export const DYLD_CHAINED_PTR_ARM64E_KERNEL = 7;
export const DYLD_CHAINED_PTR_64_KERNEL_CACHE = 8;
export const DYLD_CHAINED_PTR_ARM64E_USERLAND = 9;
export const DYLD_CHAINED_PTR_ARM64E_USERLAND24 = 12;
const DYLD_CHAINED_PTR_START_NONE = 0xffff;
const DYLD_CHAINED_PTR_START_MULTI = 0x8000;

const STRIDE: Record<number, number> = { 1: 8, 2: 4, 6: 4, 7: 4, 8: 4, 9: 8, 12: 8 };
const ARM64E = new Set([1, 7, 9, 12]);
/** Formats whose rebase target is an offset from the image base rather than a vmaddr. */
const TARGET_IS_OFFSET = new Set([6, 7, 8, 9, 12]);

export interface ChainEntry {
  /** File offset of the slot. */
  offset: number;
  format: number;
  raw: bigint;
  bind: boolean;
  auth: boolean;
  /** Address the slot points to (for rebases). */
  target?: bigint;
}

const u16 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number) => BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
const bits = (v: bigint, lo: number, n: number) => (v >> BigInt(lo)) & ((1n << BigInt(n)) - 1n);

function decode(format: number, raw: bigint, base: bigint, offset: number): ChainEntry {
  if (format === DYLD_CHAINED_PTR_64_KERNEL_CACHE) {
    const auth = bits(raw, 63, 1) === 1n;
    return { offset, format, raw, bind: false, auth, target: base + bits(raw, 0, 30) };
  }
  if (ARM64E.has(format)) {
    const bind = bits(raw, 62, 1) === 1n;
    const auth = bits(raw, 63, 1) === 1n;
    if (bind) return { offset, format, raw, bind, auth };
    if (auth) return { offset, format, raw, bind, auth, target: base + bits(raw, 0, 32) };
    const t = bits(raw, 0, 43) | (bits(raw, 43, 8) << 56n);
    return { offset, format, raw, bind, auth, target: TARGET_IS_OFFSET.has(format) ? base + t : t };
  }
  const bind = bits(raw, 63, 1) === 1n;
  if (bind) return { offset, format, raw, bind, auth: false };
  const t = bits(raw, 0, 36) | (bits(raw, 36, 8) << 56n);
  return { offset, format, raw, bind, auth: false, target: TARGET_IS_OFFSET.has(format) ? base + t : t };
}

function nextOf(format: number, raw: bigint): number {
  return Number(ARM64E.has(format) ? bits(raw, 51, 11) : bits(raw, 51, 12));
}

/** Every chain entry of the collection, in chain order. Bounded by the page sizes it declares. */
export function walkChains(c: Collection): ChainEntry[] {
  const fx = c.chainedFixups;
  if (!fx) return [];
  const b = c.bytes;
  const at = fx.dataoff;
  const what = 'dyld_chained_fixups_header';
  if (at + 28 > b.length || fx.datasize < 28) throw new FormatError(what, BigInt(at), 'outside the file');
  const startsOff = at + u32(b, at + 4);
  if (startsOff + 4 > b.length) throw new FormatError('dyld_chained_starts_in_image', BigInt(startsOff), 'outside the file');
  const segCount = u32(b, startsOff);
  if (startsOff + 4 + segCount * 4 > b.length) throw new FormatError('dyld_chained_starts_in_image', BigInt(startsOff), `${segCount} segments do not fit`);
  const out: ChainEntry[] = [];
  for (let i = 0; i < segCount; i++) {
    const infoOff = u32(b, startsOff + 4 + i * 4);
    if (infoOff === 0) continue;
    const s = startsOff + infoOff;
    if (s + 22 > b.length) throw new FormatError('dyld_chained_starts_in_segment', BigInt(s), 'outside the file');
    const pageSize = u16(b, s + 4);
    const format = u16(b, s + 6);
    const pageCount = u16(b, s + 20);
    const stride = STRIDE[format];
    if (!stride) throw new FormatError('dyld_chained_starts_in_segment', BigInt(s), `pointer format ${format} is not one m1prep can walk`);
    const seg = c.segments[i];
    if (!seg) throw new FormatError('dyld_chained_starts_in_segment', BigInt(s), `segment index ${i} has no LC_SEGMENT_64`);
    if (s + 22 + pageCount * 2 > b.length) throw new FormatError('dyld_chained_starts_in_segment', BigInt(s), 'page starts outside the file');
    for (let p = 0; p < pageCount; p++) {
      const start = u16(b, s + 22 + p * 2);
      if (start === DYLD_CHAINED_PTR_START_NONE) continue;
      if (start & DYLD_CHAINED_PTR_START_MULTI) throw new FormatError('dyld_chained_starts_in_segment', BigInt(s), 'DYLD_CHAINED_PTR_START_MULTI is only for 32-bit formats');
      const pageOff = Number(seg.fileoff) + p * pageSize;
      let off = pageOff + start;
      // A chain never leaves its page, so it has at most pageSize / stride links.
      for (let n = 0; n <= pageSize / stride; n++) {
        if (off + 8 > b.length || off >= pageOff + pageSize) throw new FormatError('chained fixup', BigInt(off), 'chain runs outside its page');
        const raw = u64(b, off);
        out.push(decode(format, raw, c.baseVmaddr, off));
        const next = nextOf(format, raw);
        if (next === 0) break;
        off += next * stride;
      }
    }
  }
  return out;
}

/** The new raw value of a rebase entry pointing at `newTarget`, everything else kept. */
export function reencodeTarget(e: ChainEntry, newTarget: bigint, base: bigint): bigint {
  if (e.bind) throw new PatchError(`pointer slot at file offset 0x${e.offset.toString(16)} is a bind (an import), not a rebase: m1prep re-encodes only rebases`);
  const setBits = (v: bigint, lo: number, n: number, x: bigint) => {
    const m = ((1n << BigInt(n)) - 1n) << BigInt(lo);
    return (v & ~m) | ((x << BigInt(lo)) & m);
  };
  const need = (x: bigint, n: number) => {
    if (x < 0n || x >= 1n << BigInt(n)) throw new PatchError(`pointer target 0x${newTarget.toString(16)} does not fit the ${n}-bit target field of chained-fixup format ${e.format}`);
    return x;
  };
  if (e.format === DYLD_CHAINED_PTR_64_KERNEL_CACHE) return setBits(e.raw, 0, 30, need(newTarget - base, 30));
  if (ARM64E.has(e.format)) {
    if (e.auth) return setBits(e.raw, 0, 32, need(newTarget - base, 32));
    const t = TARGET_IS_OFFSET.has(e.format) ? newTarget - base : newTarget;
    const high8 = (t >> 56n) & 0xffn;
    return setBits(setBits(e.raw, 0, 43, need(t & ((1n << 56n) - 1n), 43)), 43, 8, high8);
  }
  const t = TARGET_IS_OFFSET.has(e.format) ? newTarget - base : newTarget;
  return setBits(setBits(e.raw, 0, 36, need(t & ((1n << 56n) - 1n), 36)), 36, 8, (t >> 56n) & 0xffn);
}
