// LZ77 match finder shared by the LZFSE and LZVN encoders: hash chains over 4-byte prefixes,
// lazy evaluation (a match is deferred while the next position has a longer one), and backward
// extension of each match into the pending literals. It reports (literal run, match length,
// distance) sequences to a sink; the encoders split them to fit their own field limits.
// Written for speed in plain JavaScript: typed arrays, 32-bit integer arithmetic, one hash per
// position, no allocation per position or per match.

export interface MatchParams {
  /** Longest distance the format can express. */
  maxDistance: number;
  /** Hash chain entries visited per position. */
  maxChain: number;
  /** Stop searching once a match this long is found. */
  niceLength: number;
  /** Try the next position while the current match is shorter than this. */
  lazyBelow: number;
  /** Longest match reported (longer runs are reported as several matches). */
  maxLength: number;
}

/**
 * Called for each sequence: `literals` bytes starting at `litStart`, then a match of `length`
 * bytes at `distance` back. The last call has length 0 (trailing literals, maybe none).
 */
export type SequenceSink = (litStart: number, literals: number, length: number, distance: number) => void;

const HASH_BITS = 16;
const HASH_SHIFT = 32 - HASH_BITS;
const MIN_MATCH = 4;
/** Once a match this long is in hand, search only a quarter of the chain (as zlib's good_length). */
const GOOD_LENGTH = 32;
/** After this many positions without a match, start skipping ahead (incompressible data). */
const SKIP_AFTER = 256;

/** Longest match for position p among the chain starting at cand; distance goes to found[0]. */
function search(
  src: Uint8Array, p: number, cand: number, prev: Int32Array, wmask: number,
  minPos: number, limit: number, chain: number, best: number, nice: number, found: Int32Array,
): number {
  const first = src[p]!;
  while (cand >= minPos && chain-- > 0) {
    if (src[cand + best] === src[p + best] && src[cand] === first) {
      let l = 1;
      while (l < limit && src[cand + l] === src[p + l]) l++;
      if (l > best) {
        best = l;
        found[0] = p - cand;
        if (l >= nice || l === limit) break;
        if (l >= GOOD_LENGTH) chain >>= 2;
      }
    }
    cand = prev[cand & wmask]!;
  }
  return best;
}

export function findSequences(src: Uint8Array, params: MatchParams, sink: SequenceSink): void {
  const n = src.length;
  const { maxDistance, maxChain, niceLength, lazyBelow, maxLength } = params;
  let wbits = 1;
  while (1 << wbits <= maxDistance) wbits++;
  const wmask = (1 << wbits) - 1;
  const head = new Int32Array(1 << HASH_BITS).fill(-1);
  // Chain links by position modulo the window: a link is only followed while within
  // maxDistance, so it cannot have been overwritten by a newer position yet.
  const prev = new Int32Array(1 << wbits);
  const found = new Int32Array(1);
  // Positions p with p + 4 <= n can start a match.
  const last = n - MIN_MATCH;

  let litStart = 0;
  let p = 0;
  let misses = 0;
  while (p <= last) {
    let h = Math.imul(src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24), 0x9e3779b1) >>> HASH_SHIFT;
    let cand = head[h]!;
    head[h] = p;
    prev[p & wmask] = cand;
    let limit = n - p < maxLength ? n - p : maxLength;
    let len = search(src, p, cand, prev, wmask, p - maxDistance > 0 ? p - maxDistance : 0, limit, maxChain, MIN_MATCH - 1, niceLength, found);
    if (len < MIN_MATCH) {
      misses++;
      p += misses > SKIP_AFTER ? 1 + ((misses - SKIP_AFTER) >> 5) : 1;
      continue;
    }
    misses = 0;
    let dist = found[0]!;
    // Lazy evaluation: while the next position holds a longer match, take that one instead.
    while (len < lazyBelow && p + 1 <= last) {
      const q = p + 1;
      h = Math.imul(src[q]! | (src[q + 1]! << 8) | (src[q + 2]! << 16) | (src[q + 3]! << 24), 0x9e3779b1) >>> HASH_SHIFT;
      cand = head[h]!;
      head[h] = q;
      prev[q & wmask] = cand;
      limit = n - q < maxLength ? n - q : maxLength;
      const len2 = search(src, q, cand, prev, wmask, q - maxDistance > 0 ? q - maxDistance : 0, limit, maxChain >> 1, len, niceLength, found);
      if (len2 <= len) break;
      p = q;
      len = len2;
      dist = found[0]!;
    }
    // Grow the match backwards over literals that also match.
    let start = p;
    while (start > litStart && start - dist > 0 && src[start - 1] === src[start - 1 - dist] && len < maxLength) {
      start--;
      len++;
    }
    sink(litStart, start - litStart, len, dist);
    const end = start + len;
    // Every position goes into the chains, also inside long matches: repeated blocks of text
    // are only found again at their true distance if their middles are there.
    const stop = end <= last ? end : last + 1;
    let q = p + 1;
    if (q < stop) {
      let v = src[q]! | (src[q + 1]! << 8) | (src[q + 2]! << 16);
      // Rolling: v holds bytes q..q+2; add q+3, hash, shift one byte out.
      for (; q < stop; q++) {
        const w = v | (src[q + 3]! << 24);
        const hq = Math.imul(w, 0x9e3779b1) >>> HASH_SHIFT;
        prev[q & wmask] = head[hq]!;
        head[hq] = q;
        v = w >>> 8;
      }
    }
    p = end;
    litStart = end;
  }
  sink(litStart, n - litStart, 0, 0);
}
