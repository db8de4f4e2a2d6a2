import { describe, expect, it } from 'vitest';
import { assemble, canAssemble } from './helpers/asm.js';
import { decodeNisv, extendLoad, registerOffset, type NisvPlan } from '../../src/vmm/cpu/kvm/nisv.js';

// The NISV decoder (what the KVM backend emulates when KVM reports an MMIO load/store without a
// syndrome) against instructions encoded by clang's assembler. The expectations are read off the
// assembly text with the Arm ARM's semantics, not off the decoder.

type Expect = Omit<NisvPlan, 'mnemonic'>;

const x = (reg: number, size: 1 | 2 | 4 | 8, offset = 0, signExtendTo?: 32 | 64) => ({ offset, size, file: 'x' as const, reg, ...(signExtendTo ? { signExtendTo } : {}) });
const v = (reg: number, size: 1 | 2 | 4 | 8 | 16, offset = 0) => ({ offset, size, file: 'v' as const, reg });

const cases: Array<[string, Expect | null]> = [
  ['stp x1, x2, [x3, #16]', { write: true, rn: 3, elements: [x(1, 8), x(2, 8, 8)], addrOffset: 16n, writeback: null }],
  ['stp x1, x2, [x3, #-32]!', { write: true, rn: 3, elements: [x(1, 8), x(2, 8, 8)], addrOffset: -32n, writeback: -32n }],
  ['ldp w4, w5, [sp], #8', { write: false, rn: 31, elements: [x(4, 4), x(5, 4, 4)], addrOffset: 0n, writeback: 8n }],
  ['ldpsw x6, x7, [x8, #-8]', { write: false, rn: 8, elements: [x(6, 4, 0, 64), x(7, 4, 4, 64)], addrOffset: -8n, writeback: null }],
  ['ldnp x9, x10, [x11, #24]', { write: false, rn: 11, elements: [x(9, 8), x(10, 8, 8)], addrOffset: 24n, writeback: null }],
  ['stp q0, q1, [x2, #32]', { write: true, rn: 2, elements: [v(0, 16), v(1, 16, 16)], addrOffset: 32n, writeback: null }],
  ['ldp d3, d4, [x5], #-16', { write: false, rn: 5, elements: [v(3, 8), v(4, 8, 8)], addrOffset: 0n, writeback: -16n }],
  ['ldp s6, s7, [x8, #4]!', { write: false, rn: 8, elements: [v(6, 4), v(7, 4, 4)], addrOffset: 4n, writeback: 4n }],
  ['str x1, [x2, #8]!', { write: true, rn: 2, elements: [x(1, 8)], addrOffset: 8n, writeback: 8n }],
  ['ldr w3, [x4], #-4', { write: false, rn: 4, elements: [x(3, 4)], addrOffset: 0n, writeback: -4n }],
  ['ldrsb x5, [x6, #1]!', { write: false, rn: 6, elements: [x(5, 1, 0, 64)], addrOffset: 1n, writeback: 1n }],
  ['ldrsh w7, [x8], #2', { write: false, rn: 8, elements: [x(7, 2, 0, 32)], addrOffset: 0n, writeback: 2n }],
  ['strb wzr, [x9, #0x7ff]', { write: true, rn: 9, elements: [x(31, 1)], addrOffset: 0x7ffn, writeback: null }],
  ['ldur x10, [x11, #-3]', { write: false, rn: 11, elements: [x(10, 8)], addrOffset: -3n, writeback: null }],
  ['ldr q12, [x13, #48]', { write: false, rn: 13, elements: [v(12, 16)], addrOffset: 48n, writeback: null }],
  ['str s14, [x15, #-4]!', { write: true, rn: 15, elements: [v(14, 4)], addrOffset: -4n, writeback: -4n }],
  ['ldr h16, [x17], #2', { write: false, rn: 17, elements: [v(16, 2)], addrOffset: 0n, writeback: 2n }],
  ['str b18, [x19]', { write: true, rn: 19, elements: [v(18, 1)], addrOffset: 0n, writeback: null }],
  ['ldr d20, [x21, x22, lsl #3]', { write: false, rn: 21, elements: [v(20, 8)], addrOffset: 0n, writeback: null, offsetReg: { rm: 22, option: 3, shift: 3 } }],
  ['str q1, [x2, w3, sxtw]', { write: true, rn: 2, elements: [v(1, 16)], addrOffset: 0n, writeback: null, offsetReg: { rm: 3, option: 6, shift: 0 } }],
  // Not emulated: exclusives, atomics, unprivileged forms, prefetch, non-memory instructions.
  ['ldxr x0, [x1]', null],
  ['ldadd x0, x1, [x2]', null],
  ['ldtr x0, [x1]', null],
  ['prfm pldl1keep, [x0]', null],
  ['add x0, x1, x2', null],
];

describe.skipIf(!canAssemble)('NISV decoding (skipped without clang, ld.lld and llvm-objcopy)', () => {
  const code = assemble(`.globl _start\n_start:\n${cases.map(([a]) => `  ${a}\n`).join('')}`, 0x1000n);
  const words = new DataView(code.buffer, code.byteOffset, code.byteLength);

  it.each(cases.map((c, i) => [c[0], i, c[1]] as const))('%s', (_asm, i, want) => {
    const plan = decodeNisv(words.getUint32(i * 4, true));
    if (want === null) {
      expect(plan).toBeNull();
      return;
    }
    expect(plan).not.toBeNull();
    const { mnemonic, ...rest } = plan!;
    expect(mnemonic.length).toBeGreaterThan(0);
    expect(rest).toEqual(want);
  });
});

describe('NISV value helpers', () => {
  it('sign- and zero-extends loads as the Arm ARM says', () => {
    expect(extendLoad(0x80n, x(0, 1, 0, 64))).toBe(0xffffffffffffff80n);
    expect(extendLoad(0x8000n, x(0, 2, 0, 32))).toBe(0xffff8000n);
    expect(extendLoad(0x80000000n, x(0, 4, 0, 64))).toBe(0xffffffff80000000n);
    expect(extendLoad(0x80n, x(0, 1))).toBe(0x80n);
  });

  it('extends register offsets (UXTW, SXTW, LSL)', () => {
    expect(registerOffset(0xffffffff_fffffff0n, { rm: 0, option: 2, shift: 0 })).toBe(0xfffffff0n);
    expect(registerOffset(0xfffffff0n, { rm: 0, option: 6, shift: 2 })).toBe(BigInt.asUintN(64, -16n * 4n));
    expect(registerOffset(3n, { rm: 0, option: 3, shift: 3 })).toBe(24n);
  });
});
