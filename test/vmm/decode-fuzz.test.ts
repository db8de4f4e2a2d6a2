import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeExceptionGen, decodeMemAccess, decodeSys } from '../../src/vmm/cpu/a64.js';
import { walk } from '../../src/vmm/cpu/pagewalk.js';
import { parseImageHeader } from '../../src/vmm/boot/linux.js';
import { FormatError } from '../../src/errors.js';

// Whatever the guest executes or puts in its page tables, the backend's decoders must answer
// (never throw, always terminate): they run inside engine callbacks.

describe('decoders under arbitrary input', () => {
  it('A64 decoding never throws', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (w, pc) => {
        decodeSys(w);
        decodeExceptionGen(w);
        const a = decodeMemAccess(w, pc, (n) => BigInt(n) * 0x1111n);
        if (a) {
          expect(a.size).toBeGreaterThan(0);
          expect(a.addr).toBeLessThan(1n << 64n);
        }
      }),
      { numRuns: 20000 },
    );
  });

  it('page walks over arbitrary tables terminate with a result', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 8 }), (va, tcr, ttbr, descs) => {
        let i = 0;
        const r = walk(va, 'read', 1, false, { sctlr: 1n, tcr, ttbr0: ttbr, ttbr1: ttbr }, () => descs[i++ % descs.length]!);
        expect(typeof r.ok).toBe('boolean');
        expect(i).toBeLessThanOrEqual(5);
      }),
      { numRuns: 5000 },
    );
  });

  it('the arm64 Image header parser throws only FormatError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), (b) => {
        try {
          parseImageHeader(b);
        } catch (e) {
          expect(e).toBeInstanceOf(FormatError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
