import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { FormatError } from '../../src/errors.js';
import { openContainer } from '../../src/macho/container.js';
import { parseIm4m, parseIm4r, parseImg4, parseIm4p } from '../../src/macho/img4.js';
import { lzfseDecode } from '../../src/macho/lzfse-decode.js';
import { lzvnDecode } from '../../src/macho/lzvn-decode.js';
import { lzssDecode } from '../../src/macho/lzss.js';
import { parseComplzss, decodeComplzss } from '../../src/macho/complzss.js';

// Mutations of real files through every container parser and decoder: the only acceptable
// failure is a FormatError (never a RangeError, TypeError, hang or huge allocation).

const read = (p: string) => new Uint8Array(readFileSync(path.join(corpus, p)));

/** xorshift32: the same mutations on every run. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

function mutate(src: Uint8Array, r: (n: number) => number, hot: number): Uint8Array {
  const b = src.slice();
  const where = () => (r(2) === 0 ? r(Math.min(hot, b.length)) : r(b.length));
  switch (r(6)) {
    case 0: // bit flips, mostly in the headers
      for (let i = 1 + r(4); i > 0; i--) { const p = where(); b[p] ^= 1 << r(8); }
      return b;
    case 1: // truncation
      return b.subarray(0, r(b.length));
    case 2: { // length/size smash: 1-4 bytes of 0xff, 0x00 or 0x80
      const p = where();
      const v = [0xff, 0x00, 0x80, r(256)][r(4)]!;
      for (let i = 0; i < 1 + r(4) && p + i < b.length; i++) b[p + i] = v;
      return b;
    }
    case 3: { // random bytes
      for (let i = 1 + r(8); i > 0; i--) b[where()] = r(256);
      return b;
    }
    case 4: { // delete a range
      const p = where();
      const n = 1 + r(16);
      return Uint8Array.from([...b.subarray(0, p), ...b.subarray(p + n)]);
    }
    default: { // duplicate a range (shifts everything after it)
      const p = where();
      const n = 1 + r(16);
      return Uint8Array.from([...b.subarray(0, p + n), ...b.subarray(p, p + n), ...b.subarray(p + n)]);
    }
  }
}

const OPEN = { maxOutput: 64 << 20 };
const targets: { file: string; hot: number; run: (b: Uint8Array) => unknown; anyBytesValid?: boolean }[] = [
  { file: 'devicetree/DeviceTree.j274ap.im4p', hot: 0x60, run: (b) => openContainer(b, OPEN) },
  { file: 'img4/pyimg4-IMG4', hot: 0x40, run: (b) => { parseImg4(b); return openContainer(b, OPEN); } },
  { file: 'img4/pyimg4-IM4P', hot: 0x40, run: (b) => parseIm4p(b) },
  { file: 'img4/pyimg4-IM4M', hot: 0x400, run: (b) => parseIm4m(b) },
  { file: 'img4/pyimg4-IM4R', hot: 0x23, run: (b) => parseIm4r(b) },
  { file: 'lzfse/gpl3.txt.lzfse', hot: 0x100, run: (b) => lzfseDecode(b, OPEN) },
  { file: 'lzfse/gpl3-head-3000.txt.lzfse', hot: 0x40, run: (b) => lzfseDecode(b, OPEN) },
  { file: 'lzfse/zeros-1MiB.bin.lzfse', hot: 0x100, run: (b) => lzfseDecode(b, OPEN) },
  { file: 'lzfse/tiny-7.bin.lzfse', hot: 0x13, run: (b) => lzfseDecode(b, OPEN) },
  { file: 'lzfse/gpl3.txt.lzvn', hot: 0x100, run: (b) => lzvnDecode(b, 1 << 16) },
  // Almost any byte string is a valid bare LZSS stream: it has no structure to break.
  { file: 'lzss/gpl3.txt.lzss', hot: 0x100, run: (b) => lzssDecode(b), anyBytesValid: true },
  { file: 'lzss/gpl3.txt.complzss', hot: 0x190, run: (b) => decodeComplzss(parseComplzss(b)) },
];

describe('fuzzed containers and streams', () => {
  for (const t of targets) {
    it(`${t.file}: only FormatError`, () => {
      const src = read(t.file);
      const r = rng(0x5eed ^ src.length);
      let rejected = 0;
      const N = 300;
      for (let i = 0; i < N; i++) {
        const m = mutate(src, r, t.hot);
        try {
          t.run(m);
        } catch (e) {
          if (!(e instanceof FormatError)) throw new Error(`mutation ${i} of ${t.file}: ${(e as Error).stack}`);
          expect(e.oneLine()).not.toMatch(/\n/);
          rejected++;
        }
      }
      // The mutations must actually reach the error paths.
      if (!t.anyBytesValid) expect(rejected).toBeGreaterThan(N / 10);
    });
  }
});
