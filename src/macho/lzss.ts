import { FormatError } from '../errors.js';

// Apple's LZSS (Okumura's 1989 LZSS as used by BootX, kext_tools and iBoot for complzss
// kernelcaches): a 4096-byte ring buffer whose first N - F bytes start as spaces, writing from
// r = N - F. A flag byte (LSB first) announces 8 items: 1 = literal byte, 0 = a 2-byte match
// "iiiiiiii iiiijjjj": ring position i (12 bits), length j + THRESHOLD + 1 (3..18).

export const LZSS_N = 4096;
export const LZSS_F = 18;
export const LZSS_THRESHOLD = 2;
const MASK = LZSS_N - 1;
const START = LZSS_N - LZSS_F; // initial ring write position; ring[0, START) starts as spaces

/**
 * The most a bare LZSS stream can expand: a flag byte plus 8 two-byte matches of 18 bytes
 * (17 bytes become 144), so 9x the input bounds any output.
 */
export const LZSS_MAX_RATIO = 9;

function bad(offset: number, detail: string): never {
  throw new FormatError('LZSS stream', BigInt(offset), detail);
}

export interface LzssDecoded {
  data: Uint8Array;
  /** Input bytes consumed. */
  consumed: number;
}

/**
 * Decode src into at most `size` bytes (stops there, as Apple's decompress_lzss does). Without a
 * size, decodes the whole stream into at most LZSS_MAX_RATIO * src.length bytes.
 */
export function lzssDecode(src: Uint8Array, size?: number): LzssDecoded {
  const exact = size !== undefined;
  const cap = exact ? size : src.length * LZSS_MAX_RATIO;
  const out = new Uint8Array(cap);
  let o = 0;
  let s = 0;
  const end = src.length;
  let flags = 0;
  outer: while (o < cap) {
    flags >>>= 1;
    if ((flags & 0x100) === 0) {
      if (s >= end) break;
      flags = src[s++]! | 0xff00;
    }
    if (flags & 1) {
      if (s >= end) break;
      out[o++] = src[s++]!;
    } else {
      if (s + 2 > end) { s = end; break; }
      const b1 = src[s++]!;
      const b2 = src[s++]!;
      const i = b1 | ((b2 & 0xf0) << 4);
      const len = (b2 & 0x0f) + LZSS_THRESHOLD + 1;
      // Ring position of output byte o is (START + o) & MASK, so i is `dist` bytes back.
      let dist = (START + o - i) & MASK;
      if (dist === 0) dist = LZSS_N;
      if (o >= dist && o + len <= cap) {
        // The common case: the whole match lies in the output already written.
        let from = o - dist;
        const e = o + len;
        while (o < e) out[o++] = out[from++]!;
        continue;
      }
      for (let k = 0; k < len; k++) {
        if (o >= cap) break outer;
        const from = o - dist;
        if (from >= 0) {
          out[o] = out[from]!;
        } else {
          // Before the first output byte: the ring's initial contents.
          const ringPos = (i + k) & MASK;
          if (ringPos >= START) bad(s - 2, `match reads ring position ${ringPos}, which was never written`);
          out[o] = 0x20;
        }
        o++;
      }
    }
  }
  return { data: o === cap ? out : out.subarray(0, o), consumed: s };
}

/**
 * Encode with hash chains over the last N - F bytes (the window Okumura's encoder uses), able to
 * match the initial spaces of the ring. Greedy with one step of lazy evaluation.
 */
export function lzssEncode(input: Uint8Array, onProgress?: (done: number) => void): Uint8Array {
  const n = input.length;
  if (n === 0) return new Uint8Array(0);
  // Work on [START spaces][input] so matches into the initial ring need no special case.
  const buf = new Uint8Array(START + n);
  buf.fill(0x20, 0, START);
  buf.set(input, START);
  const total = buf.length;
  const HASH_BITS = 14;
  const head = new Int32Array(1 << HASH_BITS).fill(-1);
  // Chain links by position modulo N: only followed within the window, so never stale.
  const prev = new Int32Array(LZSS_N);
  const hash = (p: number) => (((buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!) * 2654435761) >>> (32 - HASH_BITS);
  const insert = (p: number) => {
    if (p + 2 < total) {
      const h = hash(p);
      prev[p & MASK] = head[h]!;
      head[h] = p;
    }
  };
  const WINDOW = LZSS_N - LZSS_F;
  const MAX_CHAIN = 48;
  let bestPos = 0;
  const longest = (p: number): number => {
    if (p + 2 >= total) return 0;
    const limit = Math.min(LZSS_F, total - p);
    let best = 0;
    let cand = head[hash(p)]!;
    const min = p - WINDOW;
    for (let chain = 0; cand >= 0 && cand >= min && chain < MAX_CHAIN; chain++) {
      if (buf[cand + best] === buf[p + best]) {
        let l = 0;
        while (l < limit && buf[cand + l] === buf[p + l]) l++;
        if (l > best) {
          best = l;
          bestPos = cand;
          if (l === limit) break;
        }
      }
      cand = prev[cand & MASK]!;
    }
    return best;
  };
  // Output: worst case 9 bytes per 8 literals.
  const out = new Uint8Array(Math.ceil(n / 8) * 9 + 16);
  let o = 0;
  let flagPos = 0;
  let bit = 8;
  const item = (literal: boolean) => {
    if (bit === 8) {
      flagPos = o++;
      out[flagPos] = 0;
      bit = 0;
    }
    if (literal) out[flagPos] |= 1 << bit;
    bit++;
  };
  const match = (pos: number, len: number) => {
    item(false);
    const ring = pos & MASK; // virtual position v sits at ring index v mod N
    out[o++] = ring & 0xff;
    out[o++] = ((ring >>> 4) & 0xf0) | (len - LZSS_THRESHOLD - 1);
  };
  for (let p = 0; p < START; p++) insert(p);
  let p = START;
  let report = START + (1 << 20);
  while (p < total) {
    if (p >= report && onProgress) {
      onProgress(p - START);
      report = p + (1 << 20);
    }
    let len = longest(p);
    let pos = bestPos;
    if (len <= LZSS_THRESHOLD) {
      item(true);
      out[o++] = buf[p]!;
      insert(p++);
      continue;
    }
    insert(p);
    let from = 1; // p is already in the chains
    if (len < LZSS_F) {
      const next = longest(p + 1);
      if (next > len) {
        // A longer match starts one byte later: emit this byte as a literal and take that one.
        item(true);
        out[o++] = buf[p++]!;
        len = next;
        pos = bestPos;
        from = 0;
      }
    }
    match(pos, len);
    for (let k = from; k < len; k++) insert(p + k);
    p += len;
  }
  return out.slice(0, o);
}
