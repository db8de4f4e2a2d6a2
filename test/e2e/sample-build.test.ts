import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tool } from '../../src/host/tools.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { repoRoot, runCli } from '../helpers/cli.js';

// The sample as the toolchain built it, seen by llvm-objdump: the kexts import only what the
// kernel exports, through non-lazy pointers bound to the main executable (no lazy binding, as in a
// real collection); and the guest, walking the collection's chained fixups at boot, applies exactly
// as many as there are rebases and binds in the linked images.

const objdump = tool('llvm-objdump');
const ok = Boolean(tool('clang') && tool('ld64.lld') && objdump);
const KEXTS = ['com.m1prep.sample.a', 'com.m1prep.sample.b'];

let dir: string;
let work: string;

function dump(args: string[], file: string): string {
  const r = spawnSync(objdump!, ['--macho', ...args, file], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** Rows of a table llvm-objdump prints after `title` (up to the next blank line or table). */
function rows(text: string, title: string): string[][] {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(title));
  if (at < 0) return [];
  const out: string[][] = [];
  for (const l of lines.slice(at + 2)) {
    if (!l.trim() || /table:$/.test(l)) break;
    out.push(l.trim().split(/\s+/));
  }
  return out;
}

beforeAll(() => {
  if (!ok) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'm1prep-sample-build-'));
  const samples = process.env.M1PREP_SAMPLE_DIR || path.join(repoRoot, 'samples/build');
  expect(runCli(['sample', 'build', '12.3', '--out', samples], { timeoutMs: 600_000 }).code).toBe(0);
  dir = path.join(samples, '12.3');
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!ok)('the sample as linked (llvm-objdump; skipped without clang, ld64.lld, llvm-objdump)', { timeout: 300_000 }, () => {
  it('kexts bind only kernel exports, non-lazily, to the main executable', () => {
    const kernel = path.join(dir, 'kernel');
    expect(readFileSync(kernel).readUInt32LE(12)).toBe(2); // MH_EXECUTE
    const exported = new Set(dump(['--exports-trie'], kernel).split('\n').map((l) => l.trim().split(/\s+/)[1]).filter(Boolean));
    for (const k of KEXTS) {
      const text = dump(['--bind', '--lazy-bind'], path.join(dir, k));
      expect(rows(text, 'Lazy bind table:'), k).toEqual([]);
      const binds = rows(text, 'Bind table:');
      expect(binds.length, k).toBeGreaterThan(0);
      for (const b of binds) {
        expect(b[0], b.join(' ')).toBe('__DATA_CONST');
        expect(b[1], b.join(' ')).toBe('__got');
        expect(b.at(-2), b.join(' ')).toBe('main-executable');
        expect(exported.has(b.at(-1)!), `${k} imports ${b.at(-1)}, which the kernel does not export`).toBe(true);
      }
    }
    // Both directions: the kexts reach the kernel (binds), the kernel reaches them (kmod_info).
    for (const k of KEXTS) expect(dump(['--syms'], path.join(dir, k))).toMatch(/ _kmod_info$/m);
  });

  it.skipIf(!tryLoadUnicorn())('the guest applies one chained fixup per rebase and bind of the linked images', () => {
    let expected = 0;
    for (const f of ['kernel', ...KEXTS]) {
      const text = dump(['--rebase', '--bind'], path.join(dir, f));
      expected += rows(text, 'Rebase table:').length + rows(text, 'Bind table:').length;
    }
    expect(expected).toBeGreaterThan(10);
    const out = path.join(work, 'out');
    expect(runCli(['patch', '--profile', '12.3', '--kernelcache', path.join(dir, 'kernelcache.im4p'), '--out', out]).code).toBe(0);
    const b = runCli(['boot', out, '--verify', '--cpus', '1']);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(b.stdout).toContain(`[ok] fixups ${expected} chained fixups applied (DYLD_CHAINED_PTR_64_KERNEL_CACHE`);
  });
});
