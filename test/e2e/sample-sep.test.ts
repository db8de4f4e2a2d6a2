import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdt, serializeAdt } from '../../src/dtb/adt.js';
import { cString, leU32s, leU64s } from '../../src/dtb/adt-build.js';
import { findAdt } from '../../src/dtb/adt-views.js';
import { defaultLayoutPath, loadLayout } from '../../src/dtb/layout.js';
import { tool } from '../../src/host/tools.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { bootGuest } from '../../src/vmm/session.js';
import { repoRoot, runCli } from '../helpers/cli.js';

// The SEP guard is a real wait: given a device tree that has a Secure Enclave node (as a real
// board's does), the kernel polls the SEP mailbox, which nothing answers on the VM, for its whole
// timeout and only then panics. (The derived tree of the VM has no SEP node, so there it panics at
// once; the e2e suite covers that path.)

const ok = Boolean(tool('clang') && tool('ld64.lld') && tryLoadUnicorn());
let work: string;

beforeAll(() => {
  if (!ok) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'm1prep-sample-sep-'));
  const samples = process.env.M1PREP_SAMPLE_DIR || path.join(repoRoot, 'samples/build');
  expect(runCli(['sample', 'build', '12.3', '--out', samples], { timeoutMs: 600_000 }).code).toBe(0);
  const p = runCli(['patch', '--profile', '12.3', '--kernelcache', path.join(samples, '12.3/kernelcache.im4p'), '--out', path.join(work, 'out'), '--exclude-patch', 'sample-sep-wait']);
  expect(p.code, p.stderr).toBe(0);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!ok)('the SEP guard (skipped without clang, ld64.lld or unicorn)', () => {
  it('polls the mailbox for its 200 ms timeout before it panics, naming the SEP', { timeout: 120_000 }, async () => {
    const out = path.join(work, 'out');
    const tree = parseAdt(readFileSync(path.join(out, 'devicetree.adt')));
    const armIo = findAdt(tree, '/arm-io')!.node;
    armIo.children.push({
      properties: [
        { name: 'name', value: cString('sep') },
        { name: 'compatible', value: cString('iop-sep,ascwrap-v4') },
        { name: 'device_type', value: cString('sep') },
        { name: 'AAPL,phandle', value: leU32s([0x7f]) },
        { name: 'reg', value: leU64s([0x42400000n, 0x6c000n]) },
      ],
      children: [],
    });
    let text = '';
    const s = await bootGuest({
      guest: 'xnu',
      inputs: { kernel: new Uint8Array(readFileSync(path.join(out, 'kernelcache.macho'))), deviceTree: serializeAdt(tree), ramdisk: new Uint8Array(readFileSync(path.join(out, 'ramdisk.img'))), bootArgs: 'rd=md0', darwin: '21.4.0' },
      layout: loadLayout(readFileSync(defaultLayoutPath(), 'utf8')),
      cpus: 1,
      backend: 'software',
      serial: { describe: 'test', onInput: null, write: (b) => { text += Buffer.from(b).toString('latin1'); }, close: () => {} },
      expect: ['M1PREP-SAMPLE-BOOT-OK'],
      fail: ['panic\\(cpu \\d+ caller'],
      stopOnSuccess: true,
      timeoutS: 60,
      hangS: 20,
      trace: new Set(),
    });
    expect(s.outcome, text).toBe('panic');
    expect(text).toMatch(/panic\(cpu 0 caller 0x[0-9a-f]+\): SEP did not boot: no answer from the Secure Enclave mailbox after 200 ms\r?\n/);
    // It really polled the mailbox (reads of the unmodelled SEP window) for the whole timeout.
    expect(s.unmappedAccesses).toBeGreaterThan(10);
    expect(s.wallSeconds).toBeGreaterThanOrEqual(0.2);
  });
});
