import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli } from '../helpers/cli.js';
import { tool, which } from '../../src/host/tools.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { assemble, canAssemble } from './helpers/asm.js';
import { testLayout } from './helpers/machine.js';
import { artifactFor, MANIFEST_VERSION } from '../../src/manifest.js';
import { copyFileSync } from 'node:fs';
import { defaultLayoutPath } from '../../src/dtb/layout.js';

// `m1prep boot --kernel` end to end through the compiled CLI, with an arm64 "Image" assembled here
// (a valid Image header in front of a tiny program) and an FDT compiled by dtc.

const gdb = which(['gdb-multiarch']);
const ready = canAssemble && tryLoadUnicorn() !== null && tool('dtc') !== null;

let dir = '';
let image = '';
let dtb = '';
let entry = 0n;
let spin = '';
let reboot = '';

beforeAll(() => {
  if (!ready) return;
  dir = mkdtempSync(path.join(tmpdir(), 'm1prep-boot-'));
  const layout = testLayout();
  entry = layout.boot.linux.image.base;
  // Prints a banner, then the first word at x0 in hex (the FDT magic, if the boot protocol handed
  // over the FDT as it should), then idles in WFI.
  const bin = assemble(`
.equ UART, 0x${layout.uart0.base.toString(16)}
.globl _start
_start:
  b real_start
  .word 0
  .quad 0                       // text_offset
  .quad 0x10000                 // image_size
  .quad 0xa                     // flags: LE, 4K, anywhere
  .quad 0, 0, 0
  .word 0x644d5241              // "ARM\\x64"
  .word 0
real_start:
  ldr x1, =UART
  adr x2, banner
0: ldrb w3, [x2], #1
  cbz w3, 1f
  str w3, [x1, #0x20]
  b 0b
1: ldr w4, [x0]                 // FDT magic, big-endian in memory
  rev w4, w4
  mov x5, #28
2: lsr w6, w4, w5
  and w6, w6, #0xf
  cmp w6, #10
  add w7, w6, #'0'
  add w8, w6, #('a' - 10)
  csel w6, w7, w8, lo
  str w6, [x1, #0x20]
  subs x5, x5, #4
  b.ge 2b
  mov w6, #'\\n'
  str w6, [x1, #0x20]
idle: wfi
  b idle
banner: .asciz "hello from the guest, fdt="
`, entry);
  image = path.join(dir, 'Image');
  writeFileSync(image, bin);
  // A guest that spins silently at one PC (a hang that is not a WFI).
  const spinBin = new Uint8Array(bin.length);
  spinBin.set(bin);
  new DataView(spinBin.buffer).setUint32(0, 0x14000000, true); // b . (instead of b real_start)
  spin = path.join(dir, 'Spin');
  writeFileSync(spin, spinBin);
  // A guest that restarts the machine the way Linux's apple_wdt restart handler does.
  reboot = path.join(dir, 'Reboot');
  writeFileSync(reboot, assemble(`
.globl _start
_start:
  b 1f
  .word 0
  .quad 0, 0x10000, 0xa, 0, 0, 0
  .word 0x644d5241, 0
1: ldr x1, =0x${layout.watchdog.base.toString(16)}
  mov w2, #4
  str w2, [x1, #0x1c]           // WD1_CTRL = RESET_EN
  str wzr, [x1, #0x14]          // WD1_BITE_TIME = 0
  str wzr, [x1, #0x10]          // WD1_CUR_TIME = 0
2: b 2b
`, entry));
  const dts = path.join(dir, 'm.dts');
  writeFileSync(dts, '/dts-v1/;\n/ { #address-cells = <2>; #size-cells = <2>; chosen { }; cpus { }; };\n');
  dtb = path.join(dir, 'm.dtb');
  const r = spawnSync(tool('dtc')!, ['-I', 'dts', '-O', 'dtb', '-o', dtb, dts], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('m1prep boot (CLI)', () => {
  it('needs OUT_DIR or --kernel', () => {
    const r = runCli(['boot']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/OUT_DIR .* --kernel/);
  });

  it('refuses --backend kvm with a host error on a host without arm64 KVM', () => {
    const r = runCli(['boot', '--kernel', path.join(repoRoot, 'package.json'), '--dtb', path.join(repoRoot, 'package.json'), '--backend', 'kvm']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/KVM backend is not available/);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('--gdb with --backend kvm meets the same host check (the stub works on KVM where KVM works)', () => {
    const r = runCli(['boot', '--kernel', path.join(repoRoot, 'package.json'), '--dtb', path.join(repoRoot, 'package.json'), '--backend', 'kvm', '--gdb', '1234']);
    expect(r.code).toBe(4);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/KVM backend is not available/);
  });

  it('rejects a file that is not an arm64 Image with one line', () => {
    const r = runCli(['boot', '--kernel', path.join(repoRoot, 'package.json'), '--dtb', path.join(repoRoot, 'package.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.skipIf(!ready)('rejects a device tree that is not an FDT with one line naming the file', () => {
    const r = runCli(['boot', '--kernel', image, '--dtb', path.join(repoRoot, 'package.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/package\.json: offset 0x0: FDT/);
  });

  it.skipIf(!ready)('boots an Image, hands it the FDT in x0, and verifies the console (--json)', () => {
    const traceFile = path.join(dir, 'trace.txt');
    const r = runCli(['boot', '--kernel', image, '--dtb', dtb, '--expect', 'fdt=d00dfeed', '--verify', '--json', '--timeout', '30', '--trace', 'mmio', '--trace-file', traceFile]);
    expect(r.stderr).toBe('hello from the guest, fdt=d00dfeed\n'); // the console, off stdout
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.outcome).toBe('success');
    expect(s.markers.seen).toEqual(['fdt=d00dfeed']);
    expect(s.devicesTouched.uart0).toBeGreaterThan(20);
    const trace = readFileSync(traceFile, 'utf8');
    expect(trace).toMatch(/^mmio cpu0 W32 0x235200020 uart0 UTXH = 0x68$/m);
  });

  it.skipIf(!ready)('fails verification on a failure marker, and on a hang', () => {
    const f = runCli(['boot', '--kernel', image, '--dtb', dtb, '--expect', 'never printed', '--fail', 'hello', '--verify', '--timeout', '30', '--serial', 'null']);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/outcome +failure: hello from the guest/);
    const h = runCli(['boot', '--kernel', image, '--dtb', dtb, '--expect', 'never printed', '--verify', '--timeout', '30', '--serial', 'null']);
    expect(h.code).toBe(1);
    expect(h.stderr).toMatch(/outcome +hang: every vCPU waits in WFI and no timer is armed/);
  });

  it.skipIf(!ready)('reports a silent guest spinning at one PC as a hang (--hang)', () => {
    const r = runCli(['boot', '--kernel', spin, '--dtb', dtb, '--expect', 'x', '--verify', '--hang', '1', '--timeout', '30', '--serial', 'null']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`outcome +hang: no console output and no progress \\(PCs 0x${entry.toString(16)}\\) for 1 s`));
  });

  it.skipIf(!ready)('reports a watchdog restart as a guest reset', () => {
    const r = runCli(['boot', '--kernel', reboot, '--dtb', dtb, '--json', '--timeout', '30', '--serial', 'null']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.outcome).toBe('reset');
    expect(s.devicesTouched.wdt).toBe(3);
  });

  it.skipIf(!ready || !gdb).each(['tcp', 'unix'])('serves gdb-multiarch over %s: registers, memory, breakpoint, single step', async (kind) => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
    });
    const sockPath = path.join(mkdtempSync(path.join(tmpdir(), 'm1prep-gdb-')), 'gdb.sock');
    const where = kind === 'tcp' ? String(port) : sockPath;
    const vm = spawn(process.execPath, [path.join(repoRoot, 'bin/m1prep.js'), 'boot', '--kernel', image, '--dtb', dtb, '--gdb', where, '--timeout', '60', '--serial', 'null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    vm.stderr.on('data', (d) => { err += d; });
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => { if (err.includes('waiting for a debugger')) { clearInterval(t); resolve(); } }, 50);
      vm.on('exit', () => { clearInterval(t); reject(new Error(`VM exited: ${err}`)); });
    });
    const bp = entry + 0x40n; // real_start
    const g = spawnSync(gdb!, ['-batch', '-nx',
      '-ex', 'set architecture aarch64',
      '-ex', `target remote ${kind === 'tcp' ? `127.0.0.1:${port}` : sockPath}`,
      '-ex', 'p/x $pc',
      '-ex', `x/1xw 0x${(entry + 56n).toString(16)}`,
      '-ex', `break *0x${bp.toString(16)}`,
      '-ex', 'continue',
      '-ex', 'p/x $pc',
      '-ex', 'stepi',
      '-ex', 'p/x $pc',
      '-ex', 'p/x $x1',
      '-ex', 'kill',
    ], { encoding: 'utf8', timeout: 60_000 });
    vm.kill();
    const out = g.stdout;
    expect(out).toContain(`$1 = 0x${entry.toString(16)}`);
    expect(out).toMatch(/:\s+0x644d5241/);
    expect(out).toContain(`$2 = 0x${bp.toString(16)}`);
    expect(out).toContain(`$3 = 0x${(bp + 4n).toString(16)}`);
    expect(out).toContain('$4 = 0x235200000');
  });

  it('doctor reports the Unicorn library and its version', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const u = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === 'unicorn');
    expect(u).toBeDefined();
    if (tryLoadUnicorn()) expect(u.detail).toMatch(/libunicorn\.so\.2 2\.\d+\.\d+ \(>= 2\.1/);
    else expect(u.status).toBe('missing');
  });

  it.skipIf(!ready)('boots OUT_DIR from its manifest, and refuses an artifact changed after the fact', () => {
    const out = mkdtempSync(path.join(tmpdir(), 'm1prep-out-'));
    copyFileSync(image, path.join(out, 'Image'));
    copyFileSync(dtb, path.join(out, 'virt.dtb'));
    copyFileSync(defaultLayoutPath(), path.join(out, 'layout.yaml'));
    const manifest = {
      m1prep: MANIFEST_VERSION, guest: 'linux', profile: null,
      artifacts: { kernel: artifactFor(out, 'Image'), devicetree: artifactFor(out, 'virt.dtb'), layout: artifactFor(out, 'layout.yaml') },
      bootArgs: 'console=ttySAC0', machine: { cpus: 1, ramMiB: 1024 },
      verify: { success: ['fdt=d00dfeed'], failure: [], timeoutS: 30 }, inputs: [],
    };
    writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(manifest));
    const r = runCli(['boot', out, '--verify', '--serial', 'null']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/outcome +success: all 1 success marker/);
    writeFileSync(path.join(out, 'Image'), Buffer.concat([readFileSync(image), Buffer.from([0])]));
    const bad = runCli(['boot', out, '--verify']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/artifact kernel: Image does not match its sha256/);
  });

  it.skipIf(!ready)('serves the console on a TCP socket (--serial tcp:PORT)', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
    });
    const vm = spawn(process.execPath, [path.join(repoRoot, 'bin/m1prep.js'), 'boot', '--kernel', image, '--dtb', dtb, '--serial', `tcp:${port}`, '--expect', 'd00dfeed', '--verify', '--timeout', '30'], { stdio: 'ignore' });
    const text = await new Promise<string>((resolve, reject) => {
      let got = '';
      const tryConnect = (left: number) => {
        const c = net.connect(port, '127.0.0.1');
        let connected = false;
        c.on('connect', () => { connected = true; });
        c.on('data', (d) => { got += d; });
        c.on('close', () => { if (connected) resolve(got); });
        c.on('error', () => (left > 0 ? setTimeout(() => tryConnect(left - 1), 100) : reject(new Error('no serial socket'))));
      };
      tryConnect(100);
    });
    const code = await new Promise<number | null>((resolve) => (vm.exitCode !== null ? resolve(vm.exitCode) : vm.on('exit', resolve)));
    expect(text).toContain('hello from the guest, fdt=d00dfeed');
    expect(code).toBe(0);
  });
});
