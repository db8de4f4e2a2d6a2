import {
  addImm, BTI_C, BTI_JC, isFramePointerSetup, isFrameOpen, isPacSp, isPrologueStart, isReturnOrTrap, ldrStrUnsignedOffset, rd, rn,
} from './arm64-decode.js';
import { wordsOf } from './scan.js';
import type { Range } from './target.js';

// String cross-references: find a C string, then the ADRP + ADD (or ADRP + LDR) pairs in code that
// form its address, then the start of the function that holds the reference.

/** How far past an ADRP the compiler may schedule the ADD/LDR that completes the address. */
const PAIR_WINDOW = 8;
/** How far back from a reference a function start is looked for (64 KiB of code). */
const MAX_FUNCTION_WALK = 16384;

/** Virtual addresses of a C string: the exact string (NUL before and after), or with `partial`
 * the start of every C string that contains it. */
export function findCString(bytes: Uint8Array, ranges: Range[], text: string, partial: boolean): bigint[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = partial ? Buffer.from(text, 'utf8') : Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0])]);
  const out = new Set<bigint>();
  for (const r of ranges) {
    let from = r.start;
    for (;;) {
      const at = buf.indexOf(needle, from);
      if (at < 0 || at + needle.length > r.end) break;
      from = at + 1;
      let s = at;
      if (partial) {
        while (s > r.start && buf[s - 1] !== 0) s--;
      } else if (at > r.start && buf[at - 1] !== 0) continue;
      out.add(r.vmaddr + BigInt(s - r.start));
    }
  }
  return [...out];
}

export interface XrefQuery {
  addresses: Set<bigint>;
  /** File offsets of the ADRP of each reference found. */
  hits: number[];
}

/** Find, in one pass over a code range, the ADRP+ADD/LDR references to every query's addresses.
 * Addresses are handled as Numbers relative to the range's first page: only ADRPs (about one word
 * in twenty) need any arithmetic, and none of it BigInt. */
export function scanXrefs(bytes: Uint8Array, range: Range, queries: XrefQuery[]): void {
  const basePage = range.vmaddr >> 12n;
  const firstPc = Number(range.vmaddr & 0xfffn);
  const rel = (a: bigint) => Number(a - (basePage << 12n));
  const pages = new Map<number, { q: XrefQuery; addrs: Set<number> }[]>();
  for (const q of queries) {
    const addrs = new Set([...q.addresses].map(rel));
    for (const a of addrs) {
      const p = Math.floor(a / 4096);
      const list = pages.get(p) ?? [];
      if (!list.some((e) => e.q === q)) list.push({ q, addrs });
      pages.set(p, list);
    }
  }
  if (pages.size === 0) return;
  const words = wordsOf(bytes, range.start, range.end);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (((w & 0x9f000000) >>> 0) !== 0x90000000) continue; // ADRP
    const imm = ((((w >>> 5) & 0x7ffff) << 2) | ((w >>> 29) & 3)) << 11 >> 11; // sign-extend 21 bits
    const page = Math.floor((firstPc + i * 4) / 4096) + imm;
    const qs = pages.get(page);
    if (!qs) continue;
    const reg = rd(w);
    for (let k = i + 1; k < Math.min(words.length, i + 1 + PAIR_WINDOW); k++) {
      const v = words[k]!;
      if (rn(v) !== reg) continue;
      const lo = addImm(v) ?? ldrStrUnsignedOffset(v);
      if (lo === undefined) continue;
      const addr = page * 4096 + Number(lo);
      for (const e of qs) if (e.addrs.has(addr)) e.q.hits.push(range.start + i * 4);
      break; // the register is consumed; a later use is another address
    }
  }
}

/** File offset of the first instruction of the function holding `offset`, or undefined.
 * `stubBody`: the instructions a `return` action writes before its return, if the caller's patch
 * has one.
 * Walking back, the first PACIBSP/PACIASP is the start (it signs the return address, so it
 * opens the function). Otherwise the first frame opening (`stp x?, x?, [sp, #-n]!` or
 * `sub sp, sp, #n`) is taken, extended back over the rest of a contiguous prologue (a
 * compiler may open the frame with an stp and then lower sp) and a BTI landing pad. */
export function functionStart(bytes: Uint8Array, range: Range, offset: number, stubBody?: number[]): number | undefined {
  const words = wordsOf(bytes, range.start, range.end);
  const at = (i: number) => range.start + i * 4;
  // A BTI landing pad right before the signing instruction belongs to the function.
  const withPad = (i: number) => at(i > 0 && (words[i - 1] === BTI_C || words[i - 1] === BTI_JC) ? i - 1 : i);
  let i = Math.floor((offset - range.start) / 4);
  for (let steps = 0; i >= 0 && steps < MAX_FUNCTION_WALK; i--, steps++) {
    const w = words[i]!;
    if (isPacSp(w)) return withPad(i);
    if (isFrameOpen(w)) {
      let start = i;
      for (let j = i - 1; j >= 0 && j >= i - 8; j--) {
        const v = words[j]!;
        if (isPacSp(v)) return withPad(j);
        if (isFrameOpen(v)) start = j;
        else if (!isPrologueStart(v) && !isFramePointerSetup(v)) break;
      }
      return withPad(start);
    }
    // Returns inside a function are common (cold paths such as a panic call sit after the
    // epilogue), so a return does not stop the walk, except the end of the constant-return stub
    // this very patch writes over a prologue (`stubBody` then `ret`): a re-run on a patched
    // kernel must find the same start, to see that the patch is in place.
    if (steps > 0 && stubBody && isReturnOrTrap(w) && i >= stubBody.length && stubBody.every((v, k) => words[i - stubBody.length + k] === v)) {
      const start = i - stubBody.length;
      const before = start > 0 ? words[start - 1]! : 0;
      return isPacSp(before) || before === BTI_C || before === BTI_JC ? at(start - 1) : at(start);
    }
  }
  return undefined;
}
