import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { which } from '../../src/host/tools.js';
import { decodeExceptionGen, decodeMemAccess, decodeSys, sysIss } from '../../src/vmm/cpu/a64.js';

// The instruction decoder the software backend uses for ESR/FAR, checked on encodings produced by
// llvm-mc (an independent assembler), not on words written here.

const mc = which(['llvm-mc', 'llvm-mc-14']);

function encode(lines: string[]): number[] {
  const r = spawnSync(mc!, ['-triple=aarch64', '-mattr=+v8.2a,+lse,+rcpc,+crc', '-show-encoding'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return [...r.stdout.matchAll(/encoding: \[([^\]]+)\]/g)].map((m) => {
    const b = m[1]!.split(',').map((x) => parseInt(x.trim(), 16));
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  });
}

// Registers: xN = 0x1000 * (N + 1), sp = 0x9000_0000.
const x = (n: number, sp: boolean) => (n === 31 ? (sp ? 0x9000_0000n : 0n) : BigInt(0x1000 * (n + 1)));
const PC = 0x8000_0000n;

describe.skipIf(!mc)('A64 decoding (encodings from llvm-mc)', () => {
  const cases: Array<[string, bigint, number, boolean, Partial<{ aligned: boolean; unprivileged: boolean; cacheOp: boolean }>?]> = [
    ['ldr x0, [x1, #16]', 0x2010n, 8, false],
    ['ldrb w0, [x2, #3]', 0x3003n, 1, false],
    ['str w0, [sp, #8]', 0x9000_0008n, 4, true],
    ['ldur x0, [x1, #-8]', 0x1ff8n, 8, false],
    ['ldr x0, [x1, #-16]!', 0x1ff0n, 8, false],
    ['str x0, [x1], #32', 0x2000n, 8, true],
    ['ldr x0, [x1, x2, lsl #3]', 0x2000n + 0x3000n * 8n, 8, false],
    ['ldr w0, [x1, w2, uxtw]', 0x2000n + 0x3000n, 4, false],
    ['ldtr x0, [x1, #8]', 0x2008n, 8, false, { unprivileged: true }],
    ['ldp x0, x1, [x2, #-16]', 0x3000n - 16n, 16, false],
    ['stp x29, x30, [sp, #-32]!', 0x9000_0000n - 32n, 16, true],
    ['ldp q0, q1, [x3], #64', 0x4000n, 32, false],
    ['ldr q0, [x1, #32]', 0x2020n, 16, false],
    ['str d1, [x1, #8]', 0x2008n, 8, true],
    ['ldxr x0, [x1]', 0x2000n, 8, false, { aligned: true }],
    ['stlxr w3, x0, [x1]', 0x2000n, 8, true, { aligned: true }],
    ['ldar w0, [x4]', 0x5000n, 4, false, { aligned: true }],
    ['ldaxp x0, x1, [x2]', 0x3000n, 16, false, { aligned: true }],
    ['casal x0, x1, [x2]', 0x3000n, 8, true, { aligned: true }],
    ['ldadd x0, x1, [x2]', 0x3000n, 8, true, { aligned: true }],
    ['swp w0, w1, [sp]', 0x9000_0000n, 4, true, { aligned: true }],
    ['ld1 {v0.16b, v1.16b}, [x1]', 0x2000n, 32, false],
    ['st1 {v0.2d}, [x1], #16', 0x2000n, 16, true],
    ['dc civac, x5', 0x6000n, 64, true, { cacheOp: true }],
    ['dc zva, x5', 0x6000n, 64, true, { cacheOp: false }],
  ];

  it('computes the address, size and direction of loads, stores and DC', () => {
    const words = encode(cases.map((c) => c[0]));
    expect(words).toHaveLength(cases.length);
    cases.forEach(([text, addr, size, write, extra], i) => {
      const a = decodeMemAccess(words[i]!, PC, x);
      expect(a, text).not.toBeNull();
      expect({ text, addr: a!.addr, size: a!.size, write: a!.write }).toEqual({ text, addr, size, write });
      for (const [k, v] of Object.entries(extra ?? {})) expect(a![k as keyof typeof a], `${text} ${k}`).toBe(v);
    });
  });

  it('computes literal loads relative to the PC', () => {
    const [w] = encode(['ldr x0, #-8']);
    expect(decodeMemAccess(w!, PC, x)!.addr).toBe(PC - 8n);
  });

  it('ignores instructions that do not access memory', () => {
    for (const w of encode(['add x0, x1, x2', 'b #8', 'msr s3_5_c15_c0_0, x1', 'nop'])) expect(decodeMemAccess(w, PC, x)).toBeNull();
  });

  it('decodes MRS/MSR/SYS and the ISS of their traps', () => {
    const [mrs, msr, ic, hint] = encode(['mrs x3, s3_5_c15_c1_1', 'msr s3_1_c15_c0_0, x7', 'ic ivau, x2', 'wfi']);
    expect(decodeSys(mrs!)).toEqual({ read: true, op0: 3, op1: 5, crn: 15, crm: 1, op2: 1, rt: 3 });
    expect(decodeSys(msr!)).toEqual({ read: false, op0: 3, op1: 1, crn: 15, crm: 0, op2: 0, rt: 7 });
    expect(decodeSys(ic!)).toEqual({ read: false, op0: 1, op1: 3, crn: 7, crm: 5, op2: 1, rt: 2 });
    expect(decodeSys(hint!)).toBeNull();
    // ISS: Op0 21:20, Op2 19:17, Op1 16:14, CRn 13:10, Rt 9:5, CRm 4:1, direction 0 (Arm ARM D17.2.37)
    expect(sysIss(decodeSys(mrs!)!)).toBe((3 << 20) | (1 << 17) | (5 << 14) | (15 << 10) | (3 << 5) | (1 << 1) | 1);
  });

  it('decodes exception-generating instructions', () => {
    const [svc, hvc, smc, brk] = encode(['svc #0x42', 'hvc #1', 'smc #0', 'brk #0x800']);
    expect(decodeExceptionGen(svc!)).toEqual({ kind: 'svc', imm: 0x42 });
    expect(decodeExceptionGen(hvc!)).toEqual({ kind: 'hvc', imm: 1 });
    expect(decodeExceptionGen(smc!)).toEqual({ kind: 'smc', imm: 0 });
    expect(decodeExceptionGen(brk!)).toEqual({ kind: 'brk', imm: 0x800 });
  });
});
