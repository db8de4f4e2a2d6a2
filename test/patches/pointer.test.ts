import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PatchError } from '../../src/errors.js';
import { applyOutcomes, planPatches } from '../../src/patches/engine.js';
import { openCollection } from '../../src/patches/target.js';
import { corpus } from '../helpers/cli.js';
import { patchesFrom } from './helpers.js';
import { canBuildSamples, sample } from './samples.js';

// Pointer-slot writes re-encode the chained-fixup entry: the target changes, the chain link,
// authentication (key, diversity, address diversity) and every other entry stay as they were.
// Checked by walking the chains of the patched file again (src/macho's walker).

const KERNEL = path.join(corpus, 'kernel/dyld-kc-tests/fixups-arm64e/main.kernel'); // Apple-built, DYLD_CHAINED_PTR_ARM64E_KERNEL
const HEAD = 'set: test\ndescription: pointer tests\npatches:\n';
const patch = (target: string, match: string, to: string, extra = '') => `  - id: ptr
    reason: "redirect a function pointer to a replacement implementation"
    verified: samples-only
    target: ${target}
    match: ${match}
${extra}    action: { pointer: "${to}" }
`;

function chainsOf(bytes: Uint8Array) {
  return openCollection(bytes).chains();
}

describe('pointer-slot writes on chained fixups', () => {
  it('DYLD_CHAINED_PTR_ARM64E_KERNEL (Apple-built corpus kernel): authenticated and plain rebases', () => {
    const bytes = new Uint8Array(readFileSync(KERNEL));
    const c = openCollection(bytes);
    const syms = c.targets.get('com.apple.kernel')!.symbols;
    const before = chainsOf(bytes);
    const auth = before.find((e) => e.address === syms.get('_s'))!;
    expect(auth).toMatchObject({ kind: 'rebase', format: 7, target: syms.get('__ZL4funcv') });
    expect(auth.auth).toBeDefined();
    const plain = before.find((e) => e.address === syms.get('_s')! + 16n)!;
    expect(plain.auth).toBeUndefined();

    const ps = patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _s }', '_g') + patch('com.apple.kernel', '{ symbol: _s }', '__ZL4funcv', '    offset: 16\n').replace('id: ptr', 'id: ptr2'));
    const outcomes = planPatches(c, ps);
    expect(outcomes.map((o) => o.status)).toEqual(['applied', 'applied']);
    const after = chainsOf(applyOutcomes(bytes, outcomes));
    expect(after).toHaveLength(before.length);
    for (let i = 0; i < before.length; i++) {
      const b = before[i]!;
      const a = after[i]!;
      expect(a.address).toBe(b.address);
      expect(a.next).toBe(b.next);
      expect(a.auth).toEqual(b.auth);
      if (b.address === auth.address) expect(a.target).toBe(syms.get('_g'));
      else if (b.address === plain.address) expect(a.target).toBe(syms.get('__ZL4funcv'));
      else expect(a.raw).toBe(b.raw);
    }
  });

  it('DYLD_CHAINED_PTR_64_OFFSET (Apple-built arm64 corpus kernel): the target offset changes, nothing else', () => {
    const bytes = new Uint8Array(readFileSync(path.join(corpus, 'kernel/dyld-kc-tests/kext-bind-to-kext-arm64-chains/main.kernel')));
    const c = openCollection(bytes);
    const syms = c.targets.get('com.apple.kernel')!.symbols;
    const [before] = chainsOf(bytes);
    expect(before).toMatchObject({ format: 6, kind: 'rebase', address: syms.get('_funcPtr'), target: syms.get('_func') });
    const outcomes = planPatches(c, patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _funcPtr }', '__start')));
    const [after] = chainsOf(applyOutcomes(bytes, outcomes));
    expect(after).toMatchObject({ format: 6, kind: 'rebase', address: before!.address, target: syms.get('__start'), next: before!.next, high8: before!.high8 });
  });

  it('refuses a place that is not a chain entry, and a target the field cannot hold', () => {
    const bytes = new Uint8Array(readFileSync(KERNEL));
    const c = openCollection(bytes);
    expect(() => planPatches(c, patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _s }', '_g', '    offset: 4\n')))).toThrow(PatchError);
    expect(() => planPatches(c, patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _s }', '_g', '    offset: 4\n')))).toThrow(/is not a chained-fixup pointer slot/);
    expect(() => planPatches(c, patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _s }', '0x10')))).toThrow(/does not fit the 32-bit target field of chained-fixup format 7/);
    expect(() => planPatches(c, patchesFrom(HEAD + patch('com.apple.kernel', '{ symbol: _s }', '_nope')))).toThrow(/unknown symbol "_nope"/);
  });

  it.skipIf(!canBuildSamples)('DYLD_CHAINED_PTR_64_KERNEL_CACHE (the sample fileset): redirect a kext\'s start routine', async () => {
    const s = await sample('12.3');
    const bytes = new Uint8Array(readFileSync(s.collection));
    const c = openCollection(bytes);
    const kext = c.targets.get('com.m1prep.sample.b')!;
    const kmod = kext.symbols.get('_kmod_info')!;
    const start = kext.symbols.get('_sample_b_start')!;
    const before = chainsOf(bytes);
    const slot = before.find((e) => e.address >= kmod && e.address < kmod + 0x100n && e.target === start)!;
    expect(slot.format).toBe(8);
    const ps = patchesFrom(HEAD + patch('com.m1prep.sample.b', '{ symbol: _kmod_info }', '_amfi_verify_file', `    offset: ${Number(slot.address - kmod)}\n`));
    const outcomes = planPatches(c, ps);
    const after = chainsOf(applyOutcomes(bytes, outcomes));
    const moved = after.find((e) => e.address === slot.address)!;
    expect(moved.target).toBe(kext.symbols.get('_amfi_verify_file'));
    expect(moved.next).toBe(slot.next);
    expect(moved.cacheLevel).toBe(slot.cacheLevel);
    expect(after.filter((e) => e.address !== slot.address).map((e) => e.raw)).toEqual(before.filter((e) => e.address !== slot.address).map((e) => e.raw));
  });
});
