import foldData from './case-fold.json' with { type: 'json' };

// HFS+ names are UTF-16 in canonical decomposition (Apple TN1150, "Unicode Subtleties"), and the
// case-insensitive catalog orders them with FastUnicodeCompare and Apple's case-folding table.
//
// Decomposition: TN1150 decomposes everything except the ranges U+2000-U+2FFF, U+F900-U+FAFF and
// U+2F800-U+2FAFF (so that, e.g., CJK compatibility ideographs keep their identity). We apply
// Unicode NFD (as Node implements it) to the runs of characters outside those ranges, and keep
// the characters inside them verbatim. Apple's table predates some Unicode additions; names made
// of characters added after Unicode 3.2 may decompose where Apple's table would not.

const EXCLUDED: [number, number][] = [[0x2000, 0x2fff], [0xf900, 0xfaff], [0x2f800, 0x2faff]];

function excluded(cp: number): boolean {
  return EXCLUDED.some(([a, b]) => cp >= a && cp <= b);
}

/** The decomposed form HFS+ stores for `name`. */
export function hfsDecompose(name: string): string {
  let out = '';
  let run = '';
  for (const ch of name) {
    if (excluded(ch.codePointAt(0)!)) {
      out += run.normalize('NFD') + ch;
      run = '';
    } else {
      run += ch;
    }
  }
  return out + run.normalize('NFD');
}

export function toUtf16(s: string): Uint16Array {
  const u = new Uint16Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
}

export function fromUtf16(u: Uint16Array): string {
  let s = '';
  for (let i = 0; i < u.length; i += 4096) s += String.fromCharCode(...u.subarray(i, i + 4096));
  return s;
}

/** gLowerCaseTable expanded to one entry per UTF-16 code unit (0 = ignorable). */
const FOLD: Uint16Array = (() => {
  const t = new Uint16Array(0x10000);
  for (let i = 0; i < t.length; i++) t[i] = i;
  for (const [first, count, step, delta] of foldData.runs as [number, number, number, number][]) {
    for (let k = 0; k < count; k++) {
      const c = first + k * step;
      t[c] = c + delta;
    }
  }
  for (const c of foldData.ignorable) t[c] = 0;
  t[0] = foldData.nul;
  return t;
})();

export function foldUnit(c: number): number {
  return FOLD[c]!;
}

/** FastUnicodeCompare (TN1150): case-folded, ignorable code units skipped. */
export function compareFolded(a: Uint16Array, b: Uint16Array): number {
  let i = 0;
  let j = 0;
  for (;;) {
    let c1 = 0;
    let c2 = 0;
    while (i < a.length && c1 === 0) c1 = FOLD[a[i++]!]!;
    while (j < b.length && c2 === 0) c2 = FOLD[b[j++]!]!;
    if (c1 !== c2) return c1 < c2 ? -1 : 1;
    if (c1 === 0) return 0;
  }
}

/** HFSX binary order (kHFSBinaryCompare): unsigned UTF-16 code units, shorter first. */
export function compareBinary(a: Uint16Array, b: Uint16Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return a.length - b.length;
}
