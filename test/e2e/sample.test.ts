import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { tool } from '../../src/host/tools.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { loadFlavours } from '../../src/samples/flavours.js';
import { repoRoot, runCli } from '../helpers/cli.js';

// The client's pipeline end to end on the bundled sample: build each flavour from source, patch it
// with its profile, boot it on the VMM and verify — with 1 and 4 CPUs, with an APFS and an HFS+
// ramdisk; and with each guard's patch left out, the boot must fail at that guard, naming it.

const haveToolchain = Boolean(tool('clang') && tool('ld64.lld'));
const haveUnicorn = Boolean(tryLoadUnicorn());
const why = !haveToolchain ? 'clang / ld64.lld missing (scripts/setup.sh installs them)' : 'libunicorn 2.1 missing (scripts/setup.sh installs it)';
const flavours = loadFlavours(path.join(repoRoot, 'samples/flavours.yaml'));

// What each guard's panic says (samples/GUARDS.md). Keyed by the text the guard panics with, so the
// patch ids can change; every guard patch of the profiles must map to one of these.
const GUARD_PANICS: Record<string, RegExp> = {
  'Unsupported platform': /panic\(cpu \d+ caller 0x[0-9a-f]+\): Unsupported platform/,
  'SEP did not boot': /panic\(cpu \d+ caller 0x[0-9a-f]+\): SEP did not boot/,
  'AMFI: signature check failed': /panic\(cpu \d+ caller 0x[0-9a-f]+\): AMFI: signature check failed/,
};

let work: string;
let samples: string;

beforeAll(() => {
  if (!haveToolchain || !haveUnicorn) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'm1prep-e2e-'));
  samples = process.env.M1PREP_SAMPLE_DIR || path.join(repoRoot, 'samples/build');
  const r = runCli(['sample', 'build', '--out', samples], { timeoutMs: 900_000 });
  expect(r.code, r.stderr).toBe(0);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function patch(profile: string, out: string, extra: string[] = []) {
  // Exactly the documented command: the profile supplies the base device tree (the sample's).
  return runCli(['patch', '--profile', profile, '--kernelcache', path.join(samples, profile, 'kernelcache.im4p'), '--out', out, ...extra]);
}

function boot(out: string, cpus: number) {
  return runCli(['boot', out, '--verify', '--cpus', String(cpus), '--timeout', '60']);
}

describe.skipIf(!haveToolchain || !haveUnicorn)(`sample guest end to end (${haveToolchain && haveUnicorn ? 'clang, ld64.lld, unicorn' : why})`, { timeout: 600_000 }, () => {
  for (const f of flavours) {
    for (const fs of ['hfsplus', 'apfs'] as const) {
      it(`${f.profile} (Darwin ${f.darwin}), ${fs} ramdisk: patch, then boot --verify with 1 and 4 CPUs`, () => {
        const out = path.join(work, `${f.profile}-${fs}`);
        const p = patch(f.profile, out, ['--ramdisk-fs', fs]);
        expect(p.code, p.stderr + p.stdout).toBe(0);
        const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
        expect(manifest.darwin).toBe(f.darwin);
        for (const cpus of [1, 4]) {
          const b = boot(out, cpus);
          const console = b.stdout + b.stderr;
          expect(b.code, console).toBe(0);
          expect(console).toContain(`Darwin Kernel Version ${f.darwin}`);
          expect(console).toContain(`[ok] boot-args rev ${f.bootLineLength === 608 ? 2 : 3}, ${f.bootLineLength}-byte command line`);
          expect(console).toMatch(new RegExp(`\\[ok\\] smp ${cpus}/${cpus}\\b`));
          expect(console).toContain(`[ok] ramdisk ${fs} /etc/m1prep-marker`);
          expect(console).toContain('[ok] kext com.m1prep.sample.a');
          expect(console).toContain('[ok] kext com.m1prep.sample.b');
          expect(console).toContain(`M1PREP-SAMPLE-BOOT-OK darwin=${f.darwin} cpus=${cpus} fs=${fs}`);
        }
      });
    }
  }

  // The patches of a profile, from its patch sets (patches/<set>.yaml): all of them guard patches.
  function patchIds(profile: string): string[] {
    const prof = parse(readFileSync(path.join(repoRoot, 'profiles', `${profile}.yaml`), 'utf8')) as { patchSets: string[] };
    return prof.patchSets.flatMap((set) => {
      const doc = parse(readFileSync(path.join(repoRoot, 'patches', `${set}.yaml`), 'utf8')) as { patches: { id: string }[] };
      return doc.patches.map((p) => p.id);
    });
  }

  for (const profile of ['12.3', '14.x']) {
    it(`${profile}: every guard patch left out makes verify fail at that guard, naming it`, () => {
      const ids = patchIds(profile);
      expect(ids.length).toBeGreaterThanOrEqual(3);
      const seen = new Set<string>();
      for (const id of ids) {
        const out = path.join(work, `${profile}-without-${id}`);
        const p = patch(profile, out, ['--exclude-patch', id]);
        expect(p.code, p.stderr).toBe(0);
        const b = boot(out, 1);
        const console = b.stdout + b.stderr;
        expect(b.code, console).toBe(1);
        expect(console).not.toContain('M1PREP-SAMPLE-BOOT-OK darwin=');
        // Exactly one guard fires, and it is the one whose patch was left out.
        const fired = Object.entries(GUARD_PANICS).filter(([, re]) => re.test(console)).map(([g]) => g);
        expect(fired, console).toHaveLength(1);
        seen.add(fired[0]!);
        expect(console).toMatch(/outcome\s+panic: panic\(cpu/);
      }
      // Each guard was caught by leaving out its own patch.
      expect([...seen].sort()).toEqual(Object.keys(GUARD_PANICS).sort());
    });
  }

  it('--trace sysreg,irq names the IMPDEF and timer registers and the FIQ sources the 4-CPU boot uses', () => {
    const out = path.join(work, 'trace-12.3');
    expect(patch('12.3', out).code).toBe(0);
    const traceFile = path.join(work, 'trace.txt');
    const b = runCli(['boot', out, '--verify', '--cpus', '4', '--timeout', '60', '--serial', 'null', '--trace', 'sysreg,irq', '--trace-file', traceFile]);
    expect(b.code, b.stderr).toBe(0);
    const trace = readFileSync(traceFile, 'utf8');
    // Timer FIQs on the boot CPU: CNTP_* emulated, the FIQ raised by the timer and lowered again.
    expect(trace).toMatch(/^sysreg cpu0 MSR CNTP_TVAL_EL0 = 0x[0-9a-f]+$/m);
    expect(trace).toMatch(/^irq cpu0 FIQ raise \(timer\)$/m);
    expect(trace).toMatch(/^irq cpu0 FIQ lower \(timer\)$/m);
    // FastIPI both ways: the boot CPU sends one to each secondary, which takes it as a FIQ,
    // acknowledges it in IPI_SR and answers with one of its own.
    for (const cpu of [1, 2, 3]) {
      expect(trace).toMatch(new RegExp(`^sysreg cpu${cpu} MSR IPI_RR_LOCAL_EL1 = 0x[0-9a-f]+$`, 'm'));
      expect(trace).toMatch(new RegExp(`^irq cpu${cpu} FIQ raise \\(fast-ipi\\)$`, 'm'));
      expect(trace).toMatch(new RegExp(`^sysreg cpu${cpu} MSR IPI_SR_EL1 = 0x1$`, 'm'));
    }
    expect(trace).toMatch(/^sysreg cpu0 MRS PMCR0 = 0x[0-9a-f]+$/m);
    expect(trace).not.toMatch(/unknown IMPDEF/);
  });
});
