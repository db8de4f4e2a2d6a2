// LZ77 match finder shared by the LZFSE and LZVN encoders: hash chains over 4-byte prefixes,
// one-step-at-a-time lazy evaluation, and backward extension of each match into the pending
// literals. It reports (literal run, match length, distance) sequences to a sink; the encoders
// split them to fit their own field limits.

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

const HASH_BITS = 17;
const MIN_MATCH = 4;

export function findSequences(src: Uint8Array, params: MatchParams, sink: SequenceSink): void {
  const n = src.length;
  const { maxDistance, maxChain, niceLength, lazyBelow, maxLength } = params;
  let wbits = 1;
  while (1 << wbits <= maxDistance) wbits++;
  const wmask = (1 << wbits) - 1;
  const head = new Int32Array(1 << HASH_BITS).fill(-1);
  // Chain links by position modulo the window: a link is only followed while within maxDistance,
  // so it cannot have been overwritten by a newer position yet.
  const prev = new Int32Array(1 << wbits);
  // Positions p with p + 4 <= n can start a match.
  const last = n - MIN_MATCH;
  const hashAt = (p: number) =>
    Math.imul(src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24), 0x9e3779b1) >>> (32 - HASH_BITS);
  const insert = (p: number) => {
    const h = hashAt(p);
    prev[p & wmask] = head[h]!;
    head[h] = p;
  };

  let bestDist = 0;
  /** Longest match at p (0 if under MIN_MATCH); sets bestDist. */
  const longest = (p: number): number => {
    let cand = head[hashAt(p)]!;
    const limit = Math.min(maxLength, n - p);
    const minPos = p - maxDistance;
    let best = MIN_MATCH - 1;
    let chain = maxChain;
    while (cand >= minPos && cand >= 0 && chain-- > 0) {
      if (src[cand + best] === src[p + best] && src[cand] === src[p] && src[cand + 1] === src[p + 1]) {
        let l = 2;
        while (l < limit && src[cand + l] === src[p + l]) l++;
        if (l > best) {
          best = l;
          bestDist = p - cand;
          if (l >= niceLength || l === limit) break;
        }
      }
      cand = prev[cand & wmask]!;
    }
    return best >= MIN_MATCH ? best : 0;
  };

  let litStart = 0;
  let p = 0;
  while (p <= last) {
    let len = longest(p);
    if (len === 0) {
      insert(p++);
      continue;
    }
    let dist = bestDist;
    insert(p);
    while (len < lazyBelow && p + 1 <= last) {
      const len2 = longest(p + 1);
      if (len2 <= len) break;
      p++;
      insert(p);
      len = len2;
      dist = bestDist;
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
    const stop = Math.min(end, last + 1);
    for (let q = p + 1; q < stop; q++) insert(q);
    p = end;
    litStart = end;
  }
  sink(litStart, n - litStart, 0, 0);
}
