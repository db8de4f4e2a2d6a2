import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, PatchError } from '../../src/errors.js';
import { planPatches } from '../../src/patches/engine.js';
import { loadPatchSet } from '../../src/patches/patch-set.js';
import { readProfile } from '../../src/patches/profile.js';
import { openCollection } from '../../src/patches/target.js';
import { YamlSource } from '../../src/patches/yaml-source.js';
import { corpus, repoRoot } from '../helpers/cli.js';
import { patchesFrom } from './helpers.js';

// Mutated inputs: patch and profile YAML must come back as problems (never an exception); kernel
// bytes may only raise FormatError while opened, and FormatError / PatchError while patched.

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function mutateText(t: string, r: () => number): string {
  const chars = [...t];
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * chars.length);
    const op = r();
    const pool = ':-[]{}"\'#&*!|>\n  0x7fabz';
    if (op < 0.4) chars[at] = pool[Math.floor(r() * pool.length)]!;
    else if (op < 0.7) chars.splice(at, 1);
    else chars.splice(at, 0, pool[Math.floor(r() * pool.length)]!);
  }
  return chars.join('');
}

describe('fuzz: patch sets and profiles', () => {
  it('2000 mutations of the shipped YAML files: problems, never exceptions', () => {
    const files = [
      ...readdirSync(path.join(repoRoot, 'patches')).map((f) => path.join(repoRoot, 'patches', f)),
      ...readdirSync(path.join(repoRoot, 'profiles')).map((f) => path.join(repoRoot, 'profiles', f)),
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-fuzz-'));
    const r = rng(7);
    let problems = 0;
    for (let i = 0; i < 2000; i++) {
      const f = files[i % files.length]!;
      const text = mutateText(readFileSync(f, 'utf8'), r);
      const src = new YamlSource(path.join(dir, path.basename(f)), text);
      if (f.includes(`${path.sep}profiles${path.sep}`)) readProfile(src);
      else loadPatchSet(src);
      problems += src.problems.length ? 1 : 0;
      for (const p of src.problems) expect(p.line).toBeGreaterThan(0);
    }
    expect(problems).toBeGreaterThan(500); // the mutations do break files
  });
});

describe('fuzz: kernel bytes', () => {
  it('3000 mutations of an Apple-built kernel: FormatError while opening, FormatError/PatchError while patching', () => {
    const orig = new Uint8Array(readFileSync(path.join(corpus, 'kernel/dyld-kc-tests/fixups-arm64e/main.kernel')));
    const patches = patchesFrom(`set: test
description: fuzz
patches:
  - id: f1
    reason: "exercise every matcher on damaged input"
    verified: samples-only
    target: com.apple.kernel
    required: false
    match:
      - string: "no such string"
      - instructions: ["pacibsp", "stp x29, x30, [sp, #-0x10]!"]
      - symbol: _s
    action: { pointer: "_g" }
`);
    const r = rng(11);
    let opened = 0;
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from(orig);
      const n = 1 + Math.floor(r() * 8);
      // Mutations aimed at the header and load commands, where the structure lives.
      for (let k = 0; k < n; k++) b[Math.floor(r() * (r() < 0.8 ? 0x800 : b.length))] = Math.floor(r() * 256);
      let c;
      try {
        c = openCollection(b);
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(FormatError);
        continue;
      }
      opened++;
      try {
        planPatches(c, patches);
      } catch (e) {
        expect(e instanceof FormatError || e instanceof PatchError, String(e)).toBe(true);
      }
    }
    expect(opened).toBeGreaterThan(100);
  });
});
