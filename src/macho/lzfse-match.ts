// LZ77 match finder shared by the LZFSE and LZVN encoders: a hash table of the last 4 positions
// per 4-byte prefix (the layout of Apple's reference encoder), lazy evaluation (a match is
// deferred while the next position has a longer one), and backward extension of each match into
// the pending literals. It reports (literal run, match length, distance) sequences to a sink;
// the encoders split them to fit their own field limits. Written for speed in plain JavaScript:
// typed arrays, 32-bit integer arithmetic, 4-byte compares through a DataView, one hash per
// position, no allocation per position or per match.

export interface MatchParams {
  /** Longest distance the format can express. */
  maxDistance: number;
  /** Stop searching once a match this long is found. */
  niceLength: number;
  /** Try the next position while the current match is shorter than this. */
  lazyBelow: number;
  /** Longest match reported (longer runs are reported as several matches). */
  maxLength: number;
  /** Shortest match worth reporting: 3 or 4 (default 4). Prefixes of this many bytes are hashed. */
  minMatch?: number;
}

/**
 * Called for each sequence: `literals` bytes starting at `litStart`, then a match of `length`
 * bytes at `distance` back. The last call has length 0 (trailing literals, maybe none).
 */
export type SequenceSink = (litStart: number, literals: number, length: number, distance: number) => void;

/** 2^14 buckets of 32 bytes: 512 KiB, small enough to stay in cache (the reference uses 14 too). */
const HASH_BITS = 14;
const HASH_SHIFT = 32 - HASH_BITS;
const MIN_MATCH = 4;
/** Candidates kept per hash bucket (most recent first), as in Apple's reference encoder. */
const WIDTH = 4;
/** After this many positions without a match, start skipping ahead (incompressible data). */
const SKIP_AFTER = 256;

// The history table keeps, per bucket, WIDTH positions and the 4 bytes found at each, side by
// side in one 32-byte line: a lookup touches one cache line and the input only for candidates
// whose first 4 bytes really match (no chain of pointers to chase through memory).

/** Length of the match between p and c (both < n), at most limit; the first `l` bytes are known equal. */
function extend(src: Uint8Array, sv: DataView, p: number, c: number, limit: number, l: number): number {
  while (l + 4 <= limit && sv.getUint32(c + l, true) === sv.getUint32(p + l, true)) l += 4;
  while (l < limit && src[c + l] === src[p + l]) l++;
  return l;
}

export function findSequences(src: Uint8Array, params: MatchParams, sink: SequenceSink): void {
  const n = src.length;
  const { maxDistance, niceLength, lazyBelow, maxLength } = params;
  const minMatch = params.minMatch ?? MIN_MATCH;
  const prefixMask = minMatch === 3 ? 0xffffff : -1;
  const sv = new DataView(src.buffer, src.byteOffset, src.length);
  // [pos0..pos3, val0..val3] per bucket; positions start at -1 (empty).
  const table = new Int32Array((1 << HASH_BITS) * 2 * WIDTH);
  for (let i = 0; i < table.length; i += 2 * WIDTH) table.fill(-1, i, i + WIDTH);
  // Positions p with p + 4 <= n can start a match.
  const last = n - MIN_MATCH;
  let bestDist = 0;

  /** Best match at p from bucket b (value v = the 4 bytes at p), longer than `best`; sets bestDist. */
  const lookup = (p: number, b: number, v: number, best: number): number => {
    const limit = n - p < maxLength ? n - p : maxLength;
    for (let i = 0; i < WIDTH; i++) {
      const c = table[b + i]!;
      if (c < 0 || p - c > maxDistance) break; // slots are ordered newest first
      if (table[b + WIDTH + i] !== v) continue;
      if (best >= minMatch && src[c + best] !== src[p + best]) continue;
      const l = extend(src, sv, p, c, limit, minMatch);
      if (l > best) {
        best = l;
        bestDist = p - c;
        if (l >= niceLength) break;
      }
    }
    return best;
  };
  const insert = (b: number, p: number, v: number) => {
    table[b + 3] = table[b + 2]!; table[b + 2] = table[b + 1]!; table[b + 1] = table[b]!; table[b] = p;
    table[b + 7] = table[b + 6]!; table[b + 6] = table[b + 5]!; table[b + 5] = table[b + 4]!; table[b + 4] = v;
  };
  const bucket = (v: number) => (Math.imul(v, 0x9e3779b1) >>> HASH_SHIFT) * 2 * WIDTH;

  let litStart = 0;
  let p = 0;
  let misses = 0;
  while (p <= last) {
    let v = sv.getInt32(p, true) & prefixMask;
    let b = bucket(v);
    let len = lookup(p, b, v, minMatch - 1);
    insert(b, p, v);
    if (len < minMatch) {
      misses++;
      p += misses > SKIP_AFTER ? 1 + ((misses - SKIP_AFTER) >> 5) : 1;
      continue;
    }
    misses = 0;
    let dist = bestDist;
    // Lazy evaluation: while the next position holds a longer match, take that one instead.
    while (len < lazyBelow && p + 1 <= last) {
      const q = p + 1;
      v = sv.getInt32(q, true) & prefixMask;
      b = bucket(v);
      const len2 = lookup(q, b, v, len);
      insert(b, q, v);
      if (len2 <= len) break;
      p = q;
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
    // Every position goes into the table, also inside long matches: repeated blocks of text
    // are only found again at their true distance if their middles are there.
    const stop = end <= last ? end : last + 1;
    for (let q = p + 1; q < stop; q++) {
      const w = sv.getInt32(q, true) & prefixMask;
      insert(bucket(w), q, w);
    }
    p = end;
    litStart = end;
  }
  sink(litStart, n - litStart, 0, 0);
}
