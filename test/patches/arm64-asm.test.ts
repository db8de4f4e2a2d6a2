import { describe, expect, it } from 'vitest';
import { assemble, materialize, AsmError } from '../../src/patches/arm64-asm.js';
import { compileWord, wordMatches } from '../../src/patches/arm64-pattern.js';
import { llvmMc, mcEncode } from './llvm.js';

// The assembler's encodings must equal llvm-mc's, instruction by instruction.
const LINES = [
  'nop', 'ret', 'ret x1', 'retab', 'retaa', 'pacibsp', 'paciasp', 'autibsp', 'bti c', 'bti j', 'bti jc', 'isb', 'brk #0x1', 'brk #0xc471',
  'b #8', 'b #-4', 'b #0x7fffffc', 'b #-0x8000000', 'bl #0', 'bl #-0x1000', 'br x16', 'blr x8',
  'cbz x0, #0x20', 'cbz w3, #-8', 'cbnz x30, #0xffffc', 'cbnz w0, #-0x100000',
  'tbz w0, #3, #8', 'tbnz x9, #63, #-0x8000', 'tbnz w1, #31, #0x7ffc',
  'b.eq #8', 'b.ne #-4', 'b.hs #0x40', 'b.lo #0x40', 'b.gt #0', 'b.le #0x3fffc', 'b.al #4', 'b.mi #12',
  'mov x0, #0', 'mov w0, #1', 'mov x0, #0x10000', 'mov x1, #0xffff000000000000', 'mov w0, #-1', 'mov x0, #-2', 'mov x9, #0x12340000',
  'movz x0, #0x1234, lsl #32', 'movk x0, #0xbeef, lsl #16', 'movn w3, #0x7', 'movk w8, #0xffff',
  'mov x0, x1', 'mov w5, w30', 'mov x29, sp', 'mov sp, x9',
  'add x0, x1, #0x10', 'add x8, x8, #0xabc', 'add x0, sp, #0x20', 'add w1, w2, #0x1000', 'sub sp, sp, #0x40', 'sub x3, x4, #0xfff',
  'adds x0, x1, #1', 'subs w2, w3, #0x7', 'cmp w8, #0x22', 'cmp x0, #0', 'cmn w1, #1',
  'ldr x8, [x9, #0x10]', 'ldr w0, [x1]', 'ldr x0, [sp, #0x7ff8]', 'str x1, [x2, #8]', 'str w3, [sp, #0x3ffc]',
  'ldr x0, [x1, #-8]!', 'ldr x0, [x1], #16', 'str x30, [sp, #-16]!',
  'stp x29, x30, [sp, #-0x10]!', 'stp x20, x19, [sp, #0x10]', 'ldp x29, x30, [sp], #0x10', 'ldp w1, w2, [x0, #-0x100]', 'stp x28, x27, [sp, #-0x60]!',
  'adr x0, #0x100', 'adr x3, #-4',
];

describe('arm64 assembler against llvm-mc', () => {
  it.skipIf(!llvmMc)('encodes every supported form exactly as llvm-mc does (llvm-mc not installed)', () => {
    const want = mcEncode(LINES);
    const got = LINES.map((l) => assemble(l));
    const diffs = LINES.map((l, i) => [l, want[i]!.toString(16), got[i]!.toString(16)]).filter(([, w, g]) => w !== g);
    expect(diffs).toEqual([]);
  });

  it.skipIf(!llvmMc)('adrp: page distance from the instruction, as llvm-mc computes it (llvm-mc not installed)', () => {
    // llvm-mc assembles at address 0, so a page offset equals the byte offset rounded to pages.
    expect(assemble('adrp x0, #0x4000')).toBe(mcEncode(['adrp x0, #0x4000'])[0]);
    expect(assemble('adrp x5, #-0x100000')).toBe(mcEncode(['adrp x5, #-0x100000'])[0]);
    // Absolute targets resolve against pc: from 0x1ff8 to 0x3010 is +2 pages.
    expect(assemble('adrp x0, 0x3010', 0x1ff8n)).toBe(mcEncode(['adrp x0, #0x2000'])[0]);
  });

  it('resolves absolute and symbolic branch targets relative to pc', () => {
    const pc = 0xfffffe0007004000n;
    expect(assemble('b 0xfffffe0007004010', pc)).toBe(assemble('b #0x10'));
    expect(assemble('bl _foo', pc, (n) => (n === '_foo' ? pc - 0x100n : undefined))).toBe(assemble('bl #-0x100'));
    expect(() => assemble('bl _nope', pc)).toThrow(/unknown symbol/);
  });

  it('rejects what it cannot encode, with the reason', () => {
    expect(() => assemble('b #2')).toThrow(AsmError);
    expect(() => assemble('b #0x8000000')).toThrow(/out of range/);
    expect(() => assemble('mov x0, #0x12345')).toThrow(/movz \+ movk/);
    expect(() => assemble('cbz x0, #0x100000')).toThrow(/out of range/);
    expect(() => assemble('fmadd d0, d1, d2, d3')).toThrow(/unsupported instruction/);
    expect(() => assemble('add x0, w1, #1')).toThrow(/mixes/);
    expect(() => assemble('ldr x0, [x1, #4]')).toThrow(/scaled/);
  });

  it.skipIf(!llvmMc)('materializes any 64-bit constant; llvm-mc agrees word by word (llvm-mc not installed)', () => {
    const words = materialize('x0', 0x1234_5678_9abc_def0n);
    expect(words.map((w) => w.toString(16))).toEqual(mcEncode(['movz x0, #0xdef0', 'movk x0, #0x9abc, lsl #16', 'movk x0, #0x5678, lsl #32', 'movk x0, #0x1234, lsl #48']).map((w) => w.toString(16)));
    expect(materialize('w0', -1n)).toEqual(mcEncode(['mov w0, #-1']));
  });
});

describe('instruction patterns with wildcards', () => {
  it.skipIf(!llvmMc)('match exactly the encodings llvm-mc gives for every operand value (llvm-mc not installed)', () => {
    const cases: [string, string[], string[]][] = [
      ['cbz x0, *', ['cbz x0, #8', 'cbz x0, #-4', 'cbz x0, #0xffffc', 'cbz x0, #-0x100000'], ['cbz x1, #8', 'cbnz x0, #8', 'cbz w0, #8']],
      ['bl *', ['bl #0', 'bl #-4', 'bl #0x7fffffc', 'bl #-0x8000000'], ['b #0', 'blr x0']],
      ['mov w0, #?', ['mov w0, #0', 'mov w0, #1', 'mov w0, #0xffff'], ['mov x0, #1', 'mov w1, #1', 'mov w0, #0x10000']],
      ['tbnz w?, #?, *', ['tbnz w0, #0, #8', 'tbnz w17, #31, #-8', 'tbnz w30, #5, #0x7ffc'], ['tbz w0, #0, #8', 'tbnz x0, #32, #8']],
      ['ldr x?, [x?, #?]', ['ldr x0, [x1]', 'ldr x8, [x19, #0x7ff8]', 'ldr x30, [x0, #0x18]'], ['ldr w0, [x1]', 'str x0, [x1]']],
      ['b.ne *', ['b.ne #8', 'b.ne #-0x100000'], ['b.eq #8', 'b #8']],
      ['cmp w8, #?', ['cmp w8, #0', 'cmp w8, #0xfff'], ['cmp w9, #0', 'cmp x8, #0']],
    ];
    for (const [pattern, yes, no] of cases) {
      const p = compileWord(pattern);
      mcEncode(yes).forEach((w, i) => expect(wordMatches(p, w), `${pattern} should match ${yes[i]}`).toBe(true));
      mcEncode(no).forEach((w, i) => expect(wordMatches(p, w), `${pattern} should not match ${no[i]}`).toBe(false));
    }
  });

  it('reads hex words with and without masks, and * as any word', () => {
    expect(compileWord('0x94000000/0xfc000000')).toMatchObject({ value: 0x94000000, mask: 0xfc000000 });
    expect(compileWord('0xd503201f')).toMatchObject({ value: 0xd503201f, mask: 0xffffffff });
    expect(compileWord('*')).toMatchObject({ value: 0, mask: 0 });
    // The value is reduced to its masked bits so comparisons stay exact.
    expect(compileWord('0x94000001/0xfc000000').value).toBe(0x94000000);
  });
});
