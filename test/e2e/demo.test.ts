import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tool } from '../../src/host/tools.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { repoRoot } from '../helpers/cli.js';

// The README's first command runs scripts/demo.sh (after npm run build): it must build, patch, boot
// and show the guest's checklist, and exit 0 — here with the 14.x flavour on an APFS ramdisk.

const ok = Boolean(tool('clang') && tool('ld64.lld') && tryLoadUnicorn());

describe.skipIf(!ok)('scripts/demo.sh (skipped without clang, ld64.lld or unicorn)', () => {
  it('builds, patches, boots and shows the checklist', { timeout: 600_000 }, () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'm1prep-demo-'));
    try {
      const r = spawnSync('bash', [path.join(repoRoot, 'scripts/demo.sh')], {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 600_000,
        env: { ...process.env, NO_COLOR: '1', M1PREP_DEMO_PROFILE: '14.x', M1PREP_DEMO_FS: 'apfs', M1PREP_DEMO_CPUS: '2', M1PREP_DEMO_OUT: path.join(out, 'demo') },
      });
      const all = r.stdout + r.stderr;
      expect(r.status, all).toBe(0);
      for (const step of ['1/3', '2/3', '3/3', 'demo passed']) expect(all).toContain(step);
      for (const line of ['[ok] mmu', '[ok] timer-fiq', '[ok] smp 2/2', '[ok] fastipi', '[ok] ramdisk apfs /etc/m1prep-marker', '[ok] kext com.m1prep.sample.a']) expect(all).toContain(line);
      expect(all).toContain('M1PREP-SAMPLE-BOOT-OK darwin=23.4.0 cpus=2 fs=apfs');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
