import type { WordPattern } from './arm64-pattern.js';
import type { Range } from './target.js';

// Searching file ranges for instruction patterns and masked bytes. Every instruction pattern that
// searches the same range is found in ONE pass over its words: a table indexed by the top byte of
// a word (where A64 keeps most opcode bits) lists the patterns whose anchor word can start there.

export interface WordsQuery {
  words: WordPattern[];
  /** Filled with the file offsets of every match, in increasing order. */
  hits: number[];
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** 32-bit words of a range (copied only when the range is not 4-byte aligned in memory). */
export function wordsOf(bytes: Uint8Array, start: number, end: number): Uint32Array {
  const n = Math.floor((end - start) / 4);
  const at = bytes.byteOffset + start;
  if (at % 4 === 0) return new Uint32Array(bytes.buffer, at, n);
  return new Uint32Array(bytes.slice(start, start + n * 4).buffer);
}

interface Entry {
  q: WordsQuery;
  anchor: number;
}

/** Find every query in the range (aligned to 4 bytes from range.start). */
export function scanWords(bytes: Uint8Array, range: Range, queries: WordsQuery[]): void {
  if (queries.length === 0) return;
  // Dense tables: `has` rejects most words with one typed-array load.
  const table: Entry[][] = Array.from({ length: 256 }, () => []);
  const has = new Uint8Array(256);
  for (const q of queries) {
    // Anchor on the word with the most fixed bits in its top byte (ties: most fixed bits).
    let anchor = 0;
    let best = -1;
    q.words.forEach((w, i) => {
      const score = popcount(w.mask & 0xff000000) * 64 + popcount(w.mask);
      if (score > best) { best = score; anchor = i; }
    });
    const w = q.words[anchor]!;
    const mTop = w.mask >>> 24;
    const vTop = w.value >>> 24;
    for (let b = 0; b < 256; b++) {
      if ((b & mTop) !== vTop) continue;
      table[b]!.push({ q, anchor });
      has[b] = 1;
    }
  }
  const words = wordsOf(bytes, range.start, range.end);
  const n = words.length;
  for (let i = 0; i < n; i++) {
    const w = words[i]!;
    if (has[w >>> 24] === 0) continue;
    const list = table[w >>> 24]!;
    for (let k = 0; k < list.length; k++) {
      const e = list[k]!;
      const s = i - e.anchor;
      const pat = e.q.words;
      if (s < 0 || s + pat.length > n) continue;
      let ok = true;
      for (let j = 0; j < pat.length; j++) {
        const p = pat[j]!;
        if (((words[s + j]! & p.mask) >>> 0) !== p.value) { ok = false; break; }
      }
      if (ok) e.q.hits.push(range.start + s * 4);
    }
  }
}

/** The longest run of fully fixed (mask 0xff) bytes of a pattern: where to anchor a search. */
function fixedRun(mask: Uint8Array): { start: number; len: number } {
  let start = 0;
  let len = 0;
  for (let i = 0; i < mask.length;) {
    if (mask[i] !== 0xff) { i++; continue; }
    let j = i;
    while (j < mask.length && mask[j] === 0xff) j++;
    if (j - i > len) { start = i; len = j - i; }
    i = j;
  }
  return { start, len };
}

function matchesAt(bytes: Uint8Array, s: number, find: Uint8Array, mask: Uint8Array): boolean {
  for (let j = 0; j < find.length; j++) if ((bytes[s + j]! & mask[j]!) !== (find[j]! & mask[j]!)) return false;
  return true;
}

export interface BytesQuery {
  find: Uint8Array;
  mask: Uint8Array;
  /** Filled with the file offsets of every match, in increasing order. */
  hits: number[];
}

/** Masked byte search, `(data & mask) == (find & mask)` (OpenCore's Find/Mask), for every query
 * of a range. Queries with 7 or more consecutive fixed bytes are found together in one pass over
 * the range's aligned 32-bit words: any occurrence has one whole aligned word inside that run, in
 * one of four alignments, so each query registers four word values in a 16-bit filter. Others use
 * the native memmem of Buffer.indexOf on their longest fixed run (or a plain scan without one). */
export function scanBytes(bytes: Uint8Array, range: Range, queries: BytesQuery[]): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const byWord = new Map<number, { q: BytesQuery; shift: number }[]>();
  for (const q of queries) {
    const len = q.find.length;
    const run = fixedRun(q.mask);
    if (run.len >= 7) {
      for (let d = 0; d < 4; d++) {
        const o = run.start + d;
        const w = (q.find[o]! | (q.find[o + 1]! << 8) | (q.find[o + 2]! << 16) | (q.find[o + 3]! << 24)) >>> 0;
        const list = byWord.get(w) ?? [];
        list.push({ q, shift: o });
        byWord.set(w, list);
      }
      continue;
    }
    if (run.len === 0) {
      for (let s = range.start; s + len <= range.end; s++) if (matchesAt(bytes, s, q.find, q.mask)) q.hits.push(s);
      continue;
    }
    const needle = Buffer.from(q.find.buffer, q.find.byteOffset + run.start, run.len);
    let from = range.start + run.start;
    for (;;) {
      const at = buf.indexOf(needle, from);
      if (at < 0) break;
      const s = at - run.start;
      if (s + len > range.end) break;
      if (s >= range.start && matchesAt(bytes, s, q.find, q.mask)) q.hits.push(s);
      from = at + 1;
    }
  }
  if (byWord.size === 0) return;
  const filter = new Uint8Array(65536);
  const fold = (w: number) => (w ^ (w >>> 16)) & 0xffff;
  for (const w of byWord.keys()) filter[fold(w)] = 1;
  // Aligned words of the range (file offsets that are multiples of 4).
  const first = (range.start + 3) & ~3;
  const words = wordsOf(bytes, first, range.end);
  const found: { q: BytesQuery; s: number }[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (filter[(w ^ (w >>> 16)) & 0xffff] === 0) continue;
    const list = byWord.get(w);
    if (!list) continue;
    for (const e of list) {
      const s = first + i * 4 - e.shift;
      if (s >= range.start && s + e.q.find.length <= range.end && matchesAt(bytes, s, e.q.find, e.q.mask)) found.push({ q: e.q, s });
    }
  }
  // One occurrence is seen once per aligned word of its run that the filter holds: keep it once.
  found.sort((x, y) => x.s - y.s);
  for (const f of found) if (f.q.hits[f.q.hits.length - 1] !== f.s) f.q.hits.push(f.s);
}

/** A place that almost matched: how many instructions / bytes agreed, and the first that did not. */
export interface NearMiss {
  offset: number;
  agreed: number;
  of: number;
  /** Index of the first instruction (or byte) that differed. */
  firstDiff: number;
}

/** The best-scoring positions for an instruction pattern that did not match (slow path: failures
 * only). Ranked by instructions that agree, then by fixed bits that agree. */
export function nearestWords(bytes: Uint8Array, ranges: Range[], pat: WordPattern[], keep = 3): NearMiss[] {
  const best: (NearMiss & { score: number })[] = [];
  for (const r of ranges) {
    const words = wordsOf(bytes, r.start, r.end);
    for (let s = 0; s + pat.length <= words.length; s++) {
      let agreed = 0;
      let bitsAgreed = 0;
      let firstDiff = -1;
      for (let j = 0; j < pat.length; j++) {
        const p = pat[j]!;
        const diff = ((words[s + j]! ^ p.value) & p.mask) >>> 0;
        if (diff === 0) agreed++;
        else if (firstDiff < 0) firstDiff = j;
        bitsAgreed += popcount(p.mask) - popcount(diff);
      }
      if (agreed === 0 && pat.length > 1) continue;
      const score = agreed * 4096 + bitsAgreed;
      if (best.length === keep && score <= best[keep - 1]!.score) continue;
      best.push({ offset: r.start + s * 4, agreed, of: pat.length, firstDiff, score });
      best.sort((a, b) => b.score - a.score || a.offset - b.offset);
      if (best.length > keep) best.pop();
    }
  }
  return best.map(({ score: _s, ...m }) => m);
}

/** The best-scoring positions for a byte pattern (counted in bytes). */
export function nearestBytes(bytes: Uint8Array, ranges: Range[], find: Uint8Array, mask: Uint8Array, keep = 3): NearMiss[] {
  const best: NearMiss[] = [];
  const len = find.length;
  for (const r of ranges) {
    for (let s = r.start; s + len <= r.end; s++) {
      // Only positions whose first masked byte agrees are worth scoring.
      if ((bytes[s]! & mask[0]!) !== (find[0]! & mask[0]!)) continue;
      let agreed = 0;
      let firstDiff = -1;
      for (let j = 0; j < len; j++) {
        if ((bytes[s + j]! & mask[j]!) === (find[j]! & mask[j]!)) agreed++;
        else if (firstDiff < 0) firstDiff = j;
      }
      if (best.length === keep && agreed <= best[keep - 1]!.agreed) continue;
      best.push({ offset: s, agreed, of: len, firstDiff });
      best.sort((a, b) => b.agreed - a.agreed || a.offset - b.offset);
      if (best.length > keep) best.pop();
    }
  }
  return best;
}
