import { FormatError } from '../errors.js';

// LZVN decoder. LZVN is the byte-oriented LZ77 codec inside LZFSE "bvxn" blocks and Intel
// "complzvn" prelinked kernels. Opcode map (from Apple's open-source lzfse, lzvn_decode_base.c):
//   sml_d LLMMMDDD DDDDDDDD         L literals (0-3), match M+3 at distance D (11 bits)
//   med_d 101LLMMM DDDDDDMM DDDDDDDD  L (0-3), M 5 bits + 3, D 14 bits
//   lrg_d LLMMM111 DDDDDDDD DDDDDDDD  L, M+3, D 16 bits little-endian
//   pre_d LLMMM110                  L, M+3, previous D
//   sml_m 1111MMMM (M 1-15), lrg_m 11110000 MMMMMMMM (M+16): match at previous D, no literal
//   sml_l 1110LLLL (L 1-15), lrg_l 11100000 LLLLLLLL (L+16): literal only
//   eos 0x06 (+7 padding bytes), nop 0x0e 0x16; 0x1e..0x3e step 8, 0x70-0x7f, 0xd0-0xdf invalid.
// Literal bytes follow their opcode. Matches may overlap their own output (copy byte by byte).

const enum Op { SML_D, MED_D, LRG_D, PRE_D, SML_M, LRG_M, SML_L, LRG_L, EOS, NOP, UDEF }

/** Kind of each of the 256 opcodes. */
export const OPCODE_KIND: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let op = 0; op < 256; op++) {
    const low = op & 7;
    let k: Op;
    if (op >= 0xf0) k = op === 0xf0 ? Op.LRG_M : Op.SML_M;
    else if (op >= 0xe0) k = op === 0xe0 ? Op.LRG_L : Op.SML_L;
    else if ((op >= 0x70 && op < 0x80) || (op >= 0xd0 && op < 0xe0)) k = Op.UDEF;
    else if (op >= 0xa0 && op < 0xc0) k = Op.MED_D;
    else if (low === 7) k = Op.LRG_D;
    else if (low === 6) k = op === 0x06 ? Op.EOS : op === 0x0e || op === 0x16 ? Op.NOP : op < 0x40 ? Op.UDEF : Op.PRE_D;
    else k = Op.SML_D;
    t[op] = k;
  }
  return t;
})();

export interface LzvnResult {
  /** Offset in src just past the end-of-stream opcode and its padding. */
  srcEnd: number;
  /** Offset in dst just past the last byte written. */
  dstEnd: number;
  /** Match distance in force at the end (LZFSE carries it only within one block). */
  lastDistance: number;
}

function bad(base: number, at: number, detail: string): never {
  throw new FormatError('LZVN stream', BigInt(base + at), detail);
}

/**
 * Decode the LZVN stream in src[srcPos, srcLimit) into dst[dstPos, dstLimit). Matches may reach
 * back to dst[0] (earlier blocks of the same LZFSE stream). Stops after the end-of-stream opcode;
 * errors (with offsets relative to `base`) on anything malformed, on references before dst[0],
 * and on output beyond dstLimit.
 */
export function lzvnDecodeInto(
  src: Uint8Array, srcPos: number, srcLimit: number,
  dst: Uint8Array, dstPos: number, dstLimit: number, base = 0,
): LzvnResult {
  let s = srcPos;
  let d = dstPos;
  let D = 0;
  const kinds = OPCODE_KIND;
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.length);
  const sv = new DataView(src.buffer, src.byteOffset, src.length);
  // Wide copies may spill up to 7 bytes past their end: only where the buffer has room. Past
  // dstLimit they land in bytes that the caller's later output overwrites (LZFSE blocks) or that
  // are not returned (lzvnDecode's slack).
  const wideEnd = dst.length;
  for (;;) {
    if (s >= srcLimit) bad(base, s, 'truncated: no end-of-stream opcode');
    const op = src[s]!;
    let L = 0;
    let M = 0;
    let len = 1;
    switch (kinds[op]) {
      case Op.SML_D:
        len = 2; L = op >>> 6; M = ((op >>> 3) & 7) + 3;
        if (s + 2 > srcLimit) bad(base, s, 'truncated opcode');
        D = ((op & 7) << 8) | src[s + 1]!;
        break;
      case Op.MED_D: {
        len = 3; L = (op >>> 3) & 3;
        if (s + 3 > srcLimit) bad(base, s, 'truncated opcode');
        const w = src[s + 1]! | (src[s + 2]! << 8);
        M = (((op & 7) << 2) | (w & 3)) + 3;
        D = w >>> 2;
        break;
      }
      case Op.LRG_D:
        len = 3; L = op >>> 6; M = ((op >>> 3) & 7) + 3;
        if (s + 3 > srcLimit) bad(base, s, 'truncated opcode');
        D = src[s + 1]! | (src[s + 2]! << 8);
        break;
      case Op.PRE_D:
        L = op >>> 6; M = ((op >>> 3) & 7) + 3;
        break;
      case Op.SML_M:
        M = op & 15;
        break;
      case Op.LRG_M:
        len = 2;
        if (s + 2 > srcLimit) bad(base, s, 'truncated opcode');
        M = src[s + 1]! + 16;
        break;
      case Op.SML_L:
        L = op & 15;
        break;
      case Op.LRG_L:
        len = 2;
        if (s + 2 > srcLimit) bad(base, s, 'truncated opcode');
        L = src[s + 1]! + 16;
        break;
      case Op.NOP:
        s += 1;
        continue;
      case Op.EOS:
        if (s + 8 > srcLimit) bad(base, s, 'truncated end-of-stream padding');
        return { srcEnd: s + 8, dstEnd: d, lastDistance: D };
      default:
        bad(base, s, `invalid opcode 0x${op.toString(16)}`);
    }
    s += len;
    if (L) {
      if (s + L > srcLimit) bad(base, s, 'truncated literal');
      if (d + L > dstLimit) bad(base, s, 'output larger than the declared size');
      if (L > 16 && s + L + 8 <= src.length && d + L + 8 <= wideEnd) {
        for (let i = 0; i < L; i += 8) {
          dv.setUint32(d + i, sv.getUint32(s + i, true), true);
          dv.setUint32(d + i + 4, sv.getUint32(s + i + 4, true), true);
        }
      } else {
        for (let i = 0; i < L; i++) dst[d + i] = src[s + i]!;
      }
      s += L;
      d += L;
    }
    if (M) {
      if (D === 0 || D > d) bad(base, s - len - L, `match distance ${D} reaches before the start of the output`);
      if (d + M > dstLimit) bad(base, s - len - L, 'output larger than the declared size');
      let from = d - D;
      const e = d + M;
      if (D >= 8 && e + 8 <= wideEnd) {
        // 8 bytes at a time (a chunk never overlaps its own source when D >= 8); may write up
        // to 7 bytes past the match, inside the buffer, which later output overwrites.
        while (d < e) {
          dv.setUint32(d, dv.getUint32(from, true), true);
          dv.setUint32(d + 4, dv.getUint32(from + 4, true), true);
          d += 8;
          from += 8;
        }
        d = e;
      } else {
        while (d < e) dst[d++] = dst[from++]!;
      }
    }
  }
}

/**
 * Decode a bare LZVN stream (no header, as in a complzvn payload). A bare stream does not state
 * its decoded size, so the caller gives an upper bound; the result is exactly what was decoded.
 */
export function lzvnDecode(src: Uint8Array, maxSize: number): Uint8Array {
  const out = new Uint8Array(maxSize + 16);
  const r = lzvnDecodeInto(src, 0, src.length, out, 0, maxSize);
  return out.subarray(0, r.dstEnd);
}
