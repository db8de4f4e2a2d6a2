import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileWord } from '../../src/patches/arm64-pattern.js';
import { scanBytes, scanWords, type BytesQuery } from '../../src/patches/scan.js';

// The fast searches against the obvious ones: every position tried, byte by byte.

function naiveBytes(b: Uint8Array, start: number, end: number, find: Uint8Array, mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let s = start; s + find.length <= end; s++) {
    let ok = true;
    for (let j = 0; j < find.length && ok; j++) ok = (b[s + j]! & mask[j]!) === (find[j]! & mask[j]!);
    if (ok) out.push(s);
  }
  return out;
}

describe('masked byte search', () => {
  it('equals the naive search: memmem path, word-filter path (7+ fixed bytes, any alignment), no fixed byte', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 600 }),
        fc.array(fc.record({ len: fc.integer({ min: 1, max: 16 }), maskSeed: fc.integer(), at: fc.nat(), plant: fc.nat({ max: 3 }) }), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: 7 }),
        (data, specs, startCut) => {
          const b = Uint8Array.from(data);
          const queries: BytesQuery[] = specs.map((sp, k) => {
            const at = sp.at % (b.length - sp.len);
            const find = b.slice(at, at + sp.len);
            // Mostly fixed bytes, some partly masked, sometimes none fixed at all.
            const mask = Uint8Array.from({ length: sp.len }, (_, j) => ((sp.maskSeed >>> ((j + k) % 30)) & 7) === 0 ? 0x0f * (j % 2) : 0xff);
            for (let p = 0; p < sp.plant; p++) {
              const to = (at * (p + 3) + 5) % (b.length - sp.len);
              b.set(find, to);
            }
            return { find, mask, hits: [] };
          });
          const start = startCut;
          const end = b.length - (startCut % 3);
          scanBytes(b, { start, end, vmaddr: 0n, label: 't' }, queries);
          for (const q of queries) expect(q.hits).toEqual(naiveBytes(b, start, end, q.find, q.mask));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('instruction pattern search', () => {
  it('equals trying every aligned position, for several patterns in one pass', () => {
    const pats = [['bl *', 'cbz w0, *'], ['mov w0, #?'], ['*', 'ret'], ['0x14000000/0xfc000000', '*', 'nop']].map((p) => p.map(compileWord));
    fc.assert(
      fc.property(fc.array(fc.constantFrom(0x94000010, 0x34000040, 0x52800020, 0xd65f03c0, 0x14000002, 0xd503201f, 0x97ffffff, 0xb4000000, 0x12345678), { minLength: 1, maxLength: 300 }), (ws) => {
        const b = new Uint8Array(ws.length * 4);
        const dv = new DataView(b.buffer);
        ws.forEach((w, i) => dv.setUint32(i * 4, w, true));
        const queries = pats.map((words) => ({ words, hits: [] as number[] }));
        scanWords(b, { start: 0, end: b.length, vmaddr: 0n, label: 't' }, queries);
        for (const q of queries) {
          const want: number[] = [];
          for (let s = 0; s + q.words.length <= ws.length; s++) if (q.words.every((p, j) => ((ws[s + j]! & p.mask) >>> 0) === p.value)) want.push(s * 4);
          expect(q.hits).toEqual(want);
        }
      }),
      { numRuns: 300 },
    );
  });
});
