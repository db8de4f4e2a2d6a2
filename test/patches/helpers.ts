import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPatchSet, type Patch } from '../../src/patches/patch-set.js';
import { formatProblem, YamlSource } from '../../src/patches/yaml-source.js';
import { buildMachO } from './llvm.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Write a patch set (YAML text) to a temp dir as <set>.yaml and load it; throws listing problems. */
export function patchesFrom(yamlText: string, set = 'test'): Patch[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-set-'));
  const file = path.join(dir, `${set}.yaml`);
  writeFileSync(file, yamlText);
  const src = YamlSource.read(file);
  const ps = loadPatchSet(src);
  if (!ps) throw new Error(src.problems.map(formatProblem).join('\n'));
  return ps.patches;
}

/** Problems reported for a patch set text (empty when valid). */
export function problemsOf(yamlText: string, set = 'test'): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-set-'));
  const file = path.join(dir, `${set}.yaml`);
  writeFileSync(file, yamlText);
  const src = YamlSource.read(file);
  loadPatchSet(src);
  return src.problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
}

export type Flavour = 'arm64e' | 'arm64-bkey';

const cache = new Map<Flavour, { file: string; bytes: Uint8Array }>();

/** test/patches/fixtures/guards.c built with clang + ld64.lld: arm64e (BTI + PACIA x30, sp) or
 * arm64 with B-key return signing (PACIB x30, sp), as Apple's kernels sign with the B key. */
export function guardsKernel(flavour: Flavour = 'arm64e'): { file: string; bytes: Uint8Array } {
  let k = cache.get(flavour);
  if (!k) {
    const src = readFileSync(path.join(here, 'fixtures/guards.c'), 'utf8');
    k = flavour === 'arm64e'
      ? buildMachO(src, { arch: 'arm64e', cflags: ['-mbranch-protection=standard'] })
      : buildMachO(src, { arch: 'arm64', cflags: ['-mbranch-protection=pac-ret+b-key'] });
    cache.set(flavour, k);
  }
  return { file: k.file, bytes: Uint8Array.from(k.bytes) };
}

/** Write bytes beside a temp name so llvm-objdump can read them. */
export function writeTemp(bytes: Uint8Array, name = 'patched.macho'): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), 'm1prep-out-')), name);
  writeFileSync(f, bytes);
  return f;
}
