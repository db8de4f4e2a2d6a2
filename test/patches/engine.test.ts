import { describe, expect, it } from 'vitest';
import { applyOutcomes, planPatches } from '../../src/patches/engine.js';
import { openCollection } from '../../src/patches/target.js';
import { disassembleFunction, haveToolchain } from './llvm.js';
import { guardsKernel, patchesFrom, writeTemp } from './helpers.js';

// Real code from clang, patched by the engine, checked with llvm-objdump (an independent
// disassembler): the patched function must read as the patch says, the rest must be untouched.

const HEAD = `set: test\ndescription: engine tests\npatches:\n`;
const COMMON = `    reason: "test patch: neutralize a guard that a virtual M1 would trip over"\n    verified: samples-only\n    target: com.apple.kernel\n`;

function run(yamlPatches: string, bytes: Uint8Array, ctx = {}) {
  const c = openCollection(bytes);
  const outcomes = planPatches(c, patchesFrom(HEAD + yamlPatches), ctx);
  return { c, outcomes, patched: applyOutcomes(bytes, outcomes) };
}

function changedRanges(a: Uint8Array, b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const last = out[out.length - 1];
    if (last && last[1] >= i - 4) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

describe.skipIf(!haveToolchain)('patch engine on clang-built code (clang, ld64.lld or llvm-objdump missing)', () => {
  it('instruction pattern: NOPs the branch to the panic path, and only that', () => {
    const k = guardsKernel();
    const before = disassembleFunction(k.file, '_platform_check');
    const { outcomes, patched } = run(`  - id: board-check
${COMMON}    match:
      instructions: ["bl *", "cmp w0, #?", "b.ne *"]
    offset: 8
    action: { nop: 1 }
`, k.bytes);
    expect(outcomes[0]!.status).toBe('applied');
    const after = disassembleFunction(writeTemp(patched), '_platform_check');
    const i = before.findIndex((l) => l.startsWith('b.ne'));
    expect(i).toBeGreaterThan(0);
    expect(after[i]).toBe('nop');
    expect(after.filter((_, j) => j !== i)).toEqual(before.filter((_, j) => j !== i));
    expect(changedRanges(k.bytes, patched)).toHaveLength(1);
    const e = outcomes[0]!.edits[0]!;
    expect(Buffer.from(e.after).toString('hex')).toBe('1f2003d5');
    expect(changedRanges(k.bytes, patched)[0]![0]).toBe(e.offset);
  });

  for (const flavour of ['arm64e', 'arm64-bkey'] as const) {
    it(`string xref -> enclosing function -> return constant, keeping the return-address signing (${flavour})`, () => {
      const k = guardsKernel(flavour);
      const { outcomes, patched } = run(`  - id: kext-signature
${COMMON}    match:
      string: "kext signature invalid: refusing to load"
    action: { return: 1, width: 32 }
`, k.bytes);
      expect(outcomes[0]!.status, outcomes[0]!.note).toBe('applied');
      const before = disassembleFunction(k.file, '_kext_signature_valid');
      const after = disassembleFunction(writeTemp(patched), '_kext_signature_valid');
      if (flavour === 'arm64e') {
        // bti c; pacia x30, sp -> the BTI landing pad is kept, signing is gone, plain ret.
        expect(before.slice(0, 2)).toEqual(['bti c', 'pacia x30, sp']);
        expect(after.slice(0, 3)).toEqual(['bti c', 'mov w0, #1', 'ret']);
      } else {
        expect(before[0]).toBe('pacib x30, sp');
        expect(after.slice(0, 3)).toEqual(['pacib x30, sp', 'mov w0, #1', 'retab']);
      }
      expect(after.slice(3)).toEqual(before.slice(3));
    });
  }

  it('symbol matcher with a 64-bit constant needing movz + movk', () => {
    const k = guardsKernel();
    const { outcomes, patched } = run(`  - id: sep-wait
${COMMON}    match: { symbol: _sep_wait }
    action: { return: "0x12340000abcd" }
`, k.bytes);
    expect(outcomes[0]!.status).toBe('applied');
    const after = disassembleFunction(writeTemp(patched), '_sep_wait');
    expect(after.slice(0, 4)).toEqual(['bti c', 'mov x0, #43981', 'movk x0, #4660, lsl #32', 'ret']);
  });

  it('bytes with mask, replace with ReplaceMask (OpenCore semantics)', () => {
    const k = guardsKernel();
    // tbz w9, #0, <loop> in _sep_wait: 0x3607ffe9. Match the opcode and bit number, any target.
    const { outcomes, patched } = run(`  - id: sep-spin
${COMMON}    match: { bytes: "09 00 00 36", mask: "1f 00 f8 ff" }
    action: { replace: "00 00 00 01", mask: "00 00 00 01" }
`, k.bytes);
    expect(outcomes[0]!.status).toBe('applied');
    const before = disassembleFunction(k.file, '_sep_wait');
    const after = disassembleFunction(writeTemp(patched), '_sep_wait');
    const i = before.findIndex((l) => l.startsWith('tbz'));
    // Only bit 24 changes: tbz -> tbnz, same register, bit and target.
    expect(after[i]).toBe(before[i]!.replace('tbz', 'tbnz'));
  });

  it('a required patch that does not match fails, with the nearest partial match and what differed', () => {
    const k = guardsKernel();
    const c = openCollection(k.bytes);
    const outcomes = planPatches(c, patchesFrom(HEAD + `  - id: board-check
${COMMON}    match:
      instructions: ["bl *", "cmp w0, #0x23", "b.ne *"]
    action: { nop: 1 }
`));
    const o = outcomes[0]!;
    expect(o.status).toBe('failed');
    expect(o.scope.join()).toMatch(/com\.apple\.kernel __TEXT,__text 0x1000/);
    const best = o.nearest[0]!;
    // The real sequence (bl; cmp w0, #34; b.ne) is the nearest: 2 of 3 agree, the cmp differs.
    const before = disassembleFunction(k.file, '_platform_check');
    expect(best.detail).toMatch(/2\/3 instructions agree; instruction 2 differs/);
    expect(best.expected).toBe('cmp w0, #0x23');
    expect(best.word).toBe(0x7100881f); // cmp w0, #34 (as llvm-objdump shows below)
    expect(before).toContain('cmp w0, #34');
    expect(applyOutcomes(k.bytes, outcomes)).toEqual(k.bytes);
  });

  it('wrong match count fails (exactly N), at-least N passes, skip/count pick the matches', () => {
    const k = guardsKernel();
    const base = (extra: string) => `  - id: x
${COMMON}    match: { instructions: ["bl *"] }
${extra}    action: { nop: 1 }
`;
    const c = openCollection(k.bytes);
    const n = planPatches(c, patchesFrom(HEAD + base('    expect: { atLeast: 1 }\n')))[0]!;
    expect(n.status).toBe('applied');
    expect(n.matches).toBeGreaterThan(3);
    const exact = planPatches(c, patchesFrom(HEAD + base('')))[0]!;
    expect(exact.status).toBe('failed');
    expect(exact.note).toBe(`matched ${n.matches} times, expected exactly 1`);
    const picked = planPatches(c, patchesFrom(HEAD + base(`    expect: ${n.matches}\n    skip: 1\n    count: 2\n`)))[0]!;
    expect(picked.edits.map((e) => e.offset)).toEqual(n.edits.slice(1, 3).map((e) => e.offset));
    const tooFar = planPatches(c, patchesFrom(HEAD + base(`    expect: { atLeast: 1 }\n    skip: 99\n`)))[0]!;
    expect(tooFar.status).toBe('failed');
    expect(tooFar.note).toMatch(/skip 99 passes over all/);
  });

  it('alternatives: the first matcher that matches wins', () => {
    const k = guardsKernel();
    const { outcomes } = run(`  - id: alt
${COMMON}    match:
      - instructions: ["mov w0, #0x4321"]
      - symbol: _no_such_symbol
      - string: "platform_check: unsupported board, expected J274"
    action: { return: 0 }
`, k.bytes);
    expect(outcomes[0]!.status).toBe('applied');
    expect(outcomes[0]!.matcher).toBe(2);
  });

  it('an alternative can write its own action at its own offset', () => {
    const k = guardsKernel();
    const { outcomes, patched } = run(`  - id: alt-action
${COMMON}    match:
      - string: "not in this kernel"
      - instructions: ["bl *", "cmp w0, #?", "b.ne *"]
        offset: 8
        action: { instructions: ["b.eq #4"] }
    action: { return: 0 }
`, k.bytes);
    expect(outcomes[0]).toMatchObject({ status: 'applied', matcher: 1 });
    const before = disassembleFunction(k.file, '_platform_check');
    const after = disassembleFunction(writeTemp(patched), '_platform_check');
    const i = before.findIndex((l) => l.startsWith('b.ne'));
    expect(after[i]).toMatch(/^b\.eq 0x[0-9a-f]+$/);
    expect(after.filter((_, j) => j !== i)).toEqual(before.filter((_, j) => j !== i));
  });

  it('conditions: Darwin and macOS ranges (inclusive, prefix bounds), architecture', () => {
    const k = guardsKernel();
    const c = openCollection(k.bytes);
    expect(c.darwin).toBe('21.4.0');
    // ld64.lld 14 writes CPU_SUBTYPE_ARM64_ALL even for -arch arm64e (llvm-objdump shows "ARM64 ALL").
    expect(c.arch).toBe('arm64');
    const withWhen = (when: string) => planPatches(c, patchesFrom(HEAD + `  - id: w
${COMMON}    when: ${when}
    match: { symbol: _sep_wait }
    action: { return: 0 }
`), { macos: '12.3' })[0]!;
    expect(withWhen('{ darwin: { min: "21.4", max: "21.4" } }').status).toBe('applied');
    expect(withWhen('{ darwin: { max: "21.3.9" } }').status).toBe('skipped-condition');
    expect(withWhen('{ darwin: { max: "21.3.9" } }').note).toBe('Darwin 21.4.0 is outside *..21.3.9');
    expect(withWhen('{ darwin: { min: "22" } }').status).toBe('skipped-condition');
    expect(withWhen('{ macos: { min: "12.3", max: "12" } }').status).toBe('applied');
    expect(withWhen('{ macos: { min: "13.0" } }').status).toBe('skipped-condition');
    expect(withWhen('{ arch: [arm64e] }').status).toBe('skipped-condition');
    expect(withWhen('{ arch: [arm64e] }').note).toBe('architecture arm64 is not arm64e');
    expect(withWhen('{ arch: [arm64, arm64e] }').status).toBe('applied');
  });

  it('optional patches that do not match are reported, not fatal; excluded patches are skipped', () => {
    const k = guardsKernel();
    const c = openCollection(k.bytes);
    const ps = patchesFrom(HEAD + `  - id: opt
${COMMON}    required: false
    match: { string: "no such string anywhere" }
    action: { return: 0 }
  - id: ex
${COMMON}    match: { symbol: _sep_wait }
    action: { return: 0 }
`);
    const [opt, ex] = planPatches(c, ps, { exclude: new Set(['ex']) });
    expect(opt!.status).toBe('not-matched');
    expect(opt!.note).toBe('string "no such string anywhere" is not in com.apple.kernel');
    expect(ex!.status).toBe('excluded');
  });

  it('re-patching a patched kernel is recognised and nothing is applied twice', () => {
    const k = guardsKernel();
    const yaml = `  - id: board-check
${COMMON}    match:
      instructions: ["bl *", "cmp w0, #?", "b.ne *"]
    offset: 8
    action: { nop: 1 }
  - id: kext-signature
${COMMON}    match: { string: "kext signature invalid: refusing to load" }
    action: { return: 1, width: 32 }
  - id: sep-spin
${COMMON}    match: { instructions: ["ldr w?, [x?, #?]", "tbz w?, #0, *"] }
    offset: 4
    action: { instructions: ["nop"] }
`;
    const first = run(yaml, k.bytes);
    expect(first.outcomes.map((o) => o.status)).toEqual(['applied', 'applied', 'applied']);
    const second = run(yaml, first.patched);
    expect(second.outcomes.map((o) => o.status)).toEqual(['already-applied', 'already-applied', 'already-applied']);
    expect(second.patched).toEqual(first.patched);
  });

  it('base symbol and limit narrow the search (OpenCore Base / Limit)', () => {
    const k = guardsKernel();
    const c = openCollection(k.bytes);
    const p = (extra: string) => planPatches(c, patchesFrom(HEAD + `  - id: b
${COMMON}    segment: __TEXT
    section: __text
${extra}    match: { instructions: ["bl *"] }
    expect: { atLeast: 1 }
    action: { nop: 1 }
`))[0]!;
    const fromStart = p('    base: _start\n');
    const startVm = c.targets.get('com.apple.kernel')!.symbols.get('_start')!;
    expect(fromStart.edits.every((e) => e.vmaddr >= startVm)).toBe(true);
    expect(fromStart.matches).toBe(3); // _start calls three functions
    expect(p('    base: _start\n    limit: 20\n').matches).toBe(1); // bti, pacia, stp, mov x29, bl
    expect(p('    base: _start\n    limit: 16\n').status).toBe('failed');
    expect(p('    base: _nope\n').note).toBe("symbol _nope (base) is not in com.apple.kernel's symbol table");
  });

  it('branch actions resolve symbols of the target and are assembled at the patch address', () => {
    const k = guardsKernel();
    const { outcomes, patched } = run(`  - id: skip-check
${COMMON}    match: { symbol: _start }
    offset: 16
    action: { instructions: ["bl _sep_wait"] }
`, k.bytes);
    expect(outcomes[0]!.status).toBe('applied');
    const after = disassembleFunction(writeTemp(patched), '_start');
    expect(after[4]).toBe('bl _sep_wait');
  });
});
