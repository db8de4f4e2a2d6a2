import { findSequences, type MatchParams } from './lzfse-match.js';

// LZVN encoder (opcode map in lzvn-decode.ts). Each match picks the shortest opcode that holds
// it: pre_d (1 byte) when the distance repeats, sml_d (2 bytes) for distances up to 0x5ff, med_d
// (3 bytes, lengths to 34) below 16384, lrg_d (3 bytes) up to 65535; longer matches continue with
// sml_m / lrg_m at the same distance. Literal runs over 3 bytes get sml_l / lrg_l opcodes.

export const LZVN_MAX_DISTANCE = 0xffff;

// 3-byte matches pay off in LZVN: sml_d carries one in 2 bytes (with up to 3 literals).

const PARAMS: MatchParams = { maxDistance: LZVN_MAX_DISTANCE, niceLength: 64, lazyBelow: 16, maxLength: 1 << 20, minMatch: 3 };

/** Longest match the first opcode can carry with L literals (0-3) in sml_d, lrg_d and pre_d:
 * the opcodes that would say more are taken by med_d, the invalid ranges and sml_l/lrg_l. */
const MAX_M_WITH_L = [10, 8, 6, 4];

/**
 * Upper bound on the encoded size of n bytes. Literal opcodes cost at most 2 bytes per run of
 * up to 271; a match of M >= 4 bytes costs at most M + 1 (3-byte opcode, then 1-2 bytes per
 * continuation of 15-271); there are at most n / 4 matches; 8 bytes of end-of-stream.
 */
export function lzvnBound(n: number): number {
  return n + 2 * Math.ceil(n / 271) + Math.ceil(n / 4) + 16;
}

/** Encode `src` as a bare LZVN stream ending in the end-of-stream opcode and 7 zero bytes. */
export function lzvnEncode(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(lzvnBound(src.length) + 16);
  let o = 0;
  let prevD = 0;

  const literalsOnly = (from: number, count: number) => {
    while (count > 0) {
      const k = Math.min(count, 271);
      if (k < 16) out[o++] = 0xe0 | k;
      else {
        out[o++] = 0xe0;
        out[o++] = k - 16;
      }
      out.set(src.subarray(from, from + k), o);
      o += k;
      from += k;
      count -= k;
    }
  };
  const matchOnly = (m: number) => {
    while (m > 0) {
      const k = Math.min(m, 271);
      if (k < 16) out[o++] = 0xf0 | k;
      else {
        out[o++] = 0xf0;
        out[o++] = k - 16;
      }
      m -= k;
    }
  };

  findSequences(src, PARAMS, (litStart, L, M, D) => {
    if (M === 0) {
      literalsOnly(litStart, L);
      return;
    }
    if (L > 3) {
      literalsOnly(litStart, L);
      litStart += L;
      L = 0;
    }
    let m1: number;
    if (D === prevD && L === 0) {
      m1 = 0; // the whole match goes in sml_m / lrg_m
    } else if (D === prevD) {
      m1 = Math.min(M, MAX_M_WITH_L[L]!);
      out[o++] = (L << 6) | ((m1 - 3) << 3) | 6; // pre_d
    } else if (D <= 0x5ff && M <= MAX_M_WITH_L[L]!) {
      m1 = M;
      out[o++] = (L << 6) | ((m1 - 3) << 3) | (D >>> 8); // sml_d
      out[o++] = D & 0xff;
    } else if (D < 0x4000) {
      m1 = Math.min(M, 34);
      const mm = m1 - 3;
      out[o++] = 0xa0 | (L << 3) | (mm >>> 2); // med_d
      const w = (D << 2) | (mm & 3);
      out[o++] = w & 0xff;
      out[o++] = w >>> 8;
    } else {
      m1 = Math.min(M, MAX_M_WITH_L[L]!);
      out[o++] = (L << 6) | ((m1 - 3) << 3) | 7; // lrg_d
      out[o++] = D & 0xff;
      out[o++] = D >>> 8;
    }
    for (let i = 0; i < L; i++) out[o++] = src[litStart + i]!;
    prevD = D;
    matchOnly(M - m1);
  });
  out[o++] = 0x06; // end of stream, then 7 bytes of padding (already zero)
  o += 7;
  return out.slice(0, o);
}
