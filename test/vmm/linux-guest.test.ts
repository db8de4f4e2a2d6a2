import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildLinuxGuest, deriveVmDtb, DONE_MARKER, GUEST_RAM_MIB, INIT_MARKER, m1prepBootArgs, makeMarkerDisk, qemuArgs, runGuest, type LinuxGuest,
} from '../../bench/linux-boot.bench.js';
import { defaultLayoutPath, loadLayout } from '../../src/dtb/layout.js';
import { repoRoot } from '../helpers/cli.js';
import { canMakeTaps, deleteLinks, freePort, ip } from '../helpers/net.js';
import { tool, which } from '../../src/host/tools.js';
import { PcieHost } from '../../src/vmm/devices/pcie-host.js';

// The real-world proof of the VMM: Debian's linux-source-6.1, built for arm64 by Debian's cross
// compiler from allnoconfig + guests/linux/m1prep.config, with a busybox-static initramfs, boots
// on m1prep's virtual t8103 with the FDT our layout derives from the upstream t8103-j274 tree, to
// an /init that prints a marker and reads a marker file from the virtio-blk disk — with 1 CPU and
// with 4. The same Image also boots on qemu's virt machine: an independent check of the guest
// build itself, so that a failure on our machine points at the VMM.
//
// The first run builds the kernel (about 4 minutes on 2 cores); later runs take it from the cache
// (${M1PREP_CACHE:-~/.cache/m1prep}/linux-6.1-<hash>).

const haveCross = tool('aarch64-linux-gnu-gcc') !== null && existsSync('/usr/src/linux-source-6.1.tar.xz');
const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
/** [unit address, body] of the dts node whose compatible contains `compat` (brace matching). */
function nodeBody(dts: string, compat: string): [string, string] | null {
  const at = dts.indexOf(`"${compat}"`);
  if (at < 0) return null;
  const open = dts.lastIndexOf('{', at);
  const name = /([\w-]+)@([0-9a-f]+) \{$/.exec(dts.slice(dts.lastIndexOf('\n', open) + 1, open + 1).trim());
  let depth = 0;
  for (let i = open; i < dts.length; i++) {
    if (dts[i] === '{') depth++;
    else if (dts[i] === '}' && --depth === 0) return name ? [name[2]!, dts.slice(open + 1, i)] : null;
  }
  return null;
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe.skipIf(!haveCross)('Linux 6.1 guest (skipped only without aarch64-linux-gnu-gcc / linux-source-6.1)', { timeout: 40 * 60_000 }, () => {
  let guest: LinuxGuest;
  let work: string;
  let disk: { path: string; marker: string };
  let diskSha: string;

  beforeAll(() => {
    guest = buildLinuxGuest();
    work = mkdtempSync(path.join(tmpdir(), 'm1prep-linux-'));
    disk = makeMarkerDisk(work);
    diskSha = sha(disk.path);
  }, 40 * 60_000);
  afterAll(() => { if (work) rmSync(work, { recursive: true, force: true }); });

  it('builds an arm64 Image, an initramfs and the base FDT', () => {
    const img = readFileSync(guest.image);
    // arm64 Image header (Documentation/arm64/booting.rst): "ARM\x64" magic at 56.
    expect(img.readUInt32LE(56)).toBe(0x644d5241);
    const cfg = readFileSync(path.join(guest.dir, 'kernel.config'), 'utf8');
    for (const opt of ['CONFIG_ARCH_APPLE=y', 'CONFIG_PCI_HOST_GENERIC=y', 'CONFIG_VIRTIO_BLK=y', 'CONFIG_ARM64_16K_PAGES=y']) {
      expect(cfg).toContain(opt);
    }
    // The base FDT is the upstream j274 tree: dtc reads it back with the AIC and the s5l UART.
    const dts = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', guest.baseDtb], { encoding: 'utf8' }).stdout;
    expect(dts).toMatch(/compatible = "apple,t8103-aic\b/);
    expect(dts).toMatch(/compatible = "apple,s5l-uart\b/);
  });

  it.skipIf(!tool('qemu-system-aarch64'))('the same Image boots on qemu -M virt and reads the disk (independent check of the guest)', async () => {
    const r = await runGuest('qemu-system-aarch64', qemuArgs(guest, disk.path, 2), { until: [DONE_MARKER], timeoutMs: 120_000, stopWhenSeen: false });
    expect(r.output).toContain(`${INIT_MARKER} cpus=2`);
    expect(r.output).toContain(`M1PREP-DISK ${disk.marker}`);
    expect(r.output).toContain('M1PREP-DISK-WRITE-OK');
    expect(r.code).toBe(0); // /init powered the machine off through PSCI
  });

  it('the VM FDT describes the ECAM host the VMM implements (dtc reads it back)', () => {
    const dtb = deriveVmDtb(guest, 4, path.join(work, 'check.dtb'));
    const dts = spawnSync('dtc', ['-q', '-I', 'dtb', '-O', 'dts', dtb], { encoding: 'utf8' }).stdout;
    const node = nodeBody(dts, 'pci-host-ecam-generic');
    expect(node, 'no pci-host-ecam-generic node').not.toBeNull();
    expect(BigInt(`0x${node![0]}`)).toBe(layout.pcie.ecam.base);
    // interrupt-map: <child unit address (3 cells)> <pin> <aic phandle> <type irq flags>, one row
    // per slot and pin; each must name the AIC input our host drives for that slot and pin.
    const map = /interrupt-map = <([^>]*)>/.exec(node![1]);
    expect(map, 'no interrupt-map').not.toBeNull();
    const cells = map![1]!.trim().split(/\s+/).map((c) => Number(c));
    const rowLen = 8;
    expect(cells.length % rowLen).toBe(0);
    for (let i = 0; i < cells.length; i += rowLen) {
      const slot = (cells[i]! >> 11) & 0x1f;
      const pin = cells[i + 3]!;
      expect(cells[i + 6], `slot ${slot} pin ${pin}`).toBe(layout.pcie.intx[PcieHost.swizzle(slot, pin)]);
    }
  });

  for (const cpus of [1, 4]) {
    it(`boots on m1prep's t8103 with ${cpus} CPU${cpus > 1 ? 's' : ''} to /init and reads the virtio-blk disk`, async () => {
      const until = [`${INIT_MARKER} cpus=${cpus}`, `M1PREP-DISK ${disk.marker}`, 'M1PREP-DISK-WRITE-OK'];
      const dtb = deriveVmDtb(guest, cpus, path.join(work, `t8103-virt-${cpus}.dtb`));
      const r = await runGuest(process.execPath, m1prepBootArgs(guest, dtb, disk.path, cpus, until, 120), { until, timeoutMs: 150_000, stopWhenSeen: false });
      const tail = r.output.split('\n').slice(-40).join('\n');
      for (const m of until) expect(r.output, `missing "${m}"; output ends with:\n${tail}`).toContain(m);
      expect(r.code, tail).toBe(0);
      // The guest wrote to the disk; the image must be untouched (writes went to the overlay).
      expect(sha(disk.path)).toBe(diskSha);
    });
  }

  // Two VMs on one Ethernet segment: qemu's virt machine (virtio-net-pci on `-netdev socket`) and
  // m1prep's t8103 (virtio-net on `--net socket`), the same kernel and /init in both. Each pings the
  // other, so frames cross in both directions through both NIC models; tcpdump (an independent
  // reader) decodes the pcap m1prep wrote of its side. The addresses are TEST-NET-1 (RFC 5737): the
  // frames exist only inside the two emulators and the loopback TCP connection between them.
  it.skipIf(!tool('qemu-system-aarch64'))('shares an Ethernet segment with a qemu VM: each pings the other over virtio-net', async () => {
    const port = await freePort();
    const pcap = path.join(work, 'net.pcap');
    const qemu = spawn('qemu-system-aarch64', [
      '-M', 'virt', '-cpu', 'max', '-smp', '1', '-m', String(GUEST_RAM_MIB), '-nographic', '-no-reboot', '-nic', 'none',
      '-kernel', guest.image, '-initrd', guest.initrd,
      '-append', 'console=ttyAMA0 m1prep.ip=192.0.2.1/24 m1prep.peer=192.0.2.2',
      '-drive', `if=none,id=d0,file=${disk.path},format=raw,snapshot=on`, '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on',
      '-netdev', `socket,id=n0,listen=127.0.0.1:${port}`,
      '-device', 'virtio-net-pci,netdev=n0,disable-legacy=on,romfile=,mac=52:54:00:aa:00:01',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let qemuOut = '';
    qemu.stdout.on('data', (b: Buffer) => { qemuOut += b.toString('utf8'); });
    qemu.stderr.on('data', (b: Buffer) => { qemuOut += b.toString('utf8'); });
    let ours: Spawned | null = null;
    try {
      const dtb = deriveVmDtb(guest, 1, path.join(work, 't8103-virt-net.dtb'));
      // No --verify: our VM must keep answering until the qemu guest is done too; the test stops it
      // with SIGINT (Ctrl-C), after which it prints the --json summary on stdout.
      ours = spawnCollect(process.execPath, [
        path.join(repoRoot, 'bin/m1prep.js'), 'boot', '--kernel', guest.image, '--initrd', guest.initrd, '--dtb', dtb,
        '--disk', disk.path, '--append', 'earlycon console=ttySAC0 m1prep.ip=192.0.2.2/24 m1prep.peer=192.0.2.1',
        '--net', `socket,connect=127.0.0.1:${port},mac=52:54:00:aa:00:02,dump=${pcap}`, '--timeout', '170', '--json',
      ]);
      const done = (out: string) => out.includes('M1PREP-NET-OK') || out.includes('M1PREP-NET-FAIL');
      await waitFor(() => (done(ours!.err) && done(qemuOut)) || ours!.exited, 170_000);
      ours.child.kill('SIGINT');
      const code = await ours.exit;
      const tail = ours.err.split('\n').slice(-30).join('\n');
      expect(ours.err, tail).toContain('M1PREP-NET-UP 52:54:00:aa:00:02 192.0.2.2/24');
      expect(ours.err, tail).toContain('M1PREP-NET-OK peer=192.0.2.1');
      expect(qemuOut.split('\n').slice(-20).join('\n')).toContain('M1PREP-NET-OK peer=192.0.2.2');
      expect(code, tail).toBe(0);
      const summary = JSON.parse(ours.out) as { nics: Array<{ mac: string; stats: { txFrames: number; rxFrames: number } }> };
      expect(summary.nics[0]!.mac).toBe('52:54:00:aa:00:02');
      // At least: 3 echo requests and 3 replies each way, and the ARP exchange.
      expect(summary.nics[0]!.stats.txFrames).toBeGreaterThanOrEqual(7);
      expect(summary.nics[0]!.stats.rxFrames).toBeGreaterThanOrEqual(7);
      if (which('tcpdump')) {
        const dump = spawnSync(which('tcpdump')!, ['-n', '-r', pcap], { encoding: 'utf8' });
        expect(dump.status, dump.stderr).toBe(0);
        expect(dump.stdout).toMatch(/192\.0\.2\.2 > 192\.0\.2\.1: ICMP echo request/);
        expect(dump.stdout).toMatch(/192\.0\.2\.1 > 192\.0\.2\.2: ICMP echo request/);
        expect(dump.stdout).toMatch(/192\.0\.2\.2 > 192\.0\.2\.1: ICMP echo reply/);
        expect(dump.stdout).toMatch(/ARP, Re(quest|ply)/);
      }
    } finally {
      qemu.kill('SIGKILL');
      ours?.child.kill('SIGKILL');
    }
  });

  // --net tap: m1prep's NIC on a host TAP interface, qemu's on another, both ports of a Linux
  // bridge that only this test creates (names unique to the run, removed afterwards). The guests
  // ping each other through the host kernel's bridge, so the frames cross a real TAP fd both ways.
  // Needs root (CAP_NET_ADMIN), /dev/net/tun and iproute2.
  it.skipIf(!canMakeTaps || !tool('qemu-system-aarch64'))('bridges a TAP interface to a qemu VM on another: each pings the other (--net tap, needs root, /dev/net/tun, ip and qemu)', async () => {
    const tag = (process.pid % 10000).toString();
    const [ours0, theirs0, bridge] = [`m1pt${tag}a`, `m1pt${tag}b`, `m1pbr${tag}`];
    let qemu: ReturnType<typeof spawn> | null = null;
    let ours: Spawned | null = null;
    try {
      for (const t of [ours0, theirs0]) ip('tuntap', 'add', 'dev', t, 'mode', 'tap');
      ip('link', 'add', bridge, 'type', 'bridge');
      for (const t of [ours0, theirs0]) { ip('link', 'set', t, 'master', bridge); ip('link', 'set', t, 'up'); }
      ip('link', 'set', bridge, 'up');
      qemu = spawn('qemu-system-aarch64', [
        '-M', 'virt', '-cpu', 'max', '-smp', '1', '-m', String(GUEST_RAM_MIB), '-nographic', '-no-reboot', '-nic', 'none',
        '-kernel', guest.image, '-initrd', guest.initrd, '-append', 'console=ttyAMA0 m1prep.ip=192.0.2.1/24 m1prep.peer=192.0.2.2',
        '-netdev', `tap,id=n0,ifname=${theirs0},script=no,downscript=no`,
        '-device', 'virtio-net-pci,netdev=n0,disable-legacy=on,romfile=,mac=52:54:00:aa:00:11',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      let qemuOut = '';
      qemu.stdout!.on('data', (b: Buffer) => { qemuOut += b.toString('utf8'); });
      qemu.stderr!.on('data', (b: Buffer) => { qemuOut += b.toString('utf8'); });
      const dtb = deriveVmDtb(guest, 1, path.join(work, 't8103-virt-tap.dtb'));
      ours = spawnCollect(process.execPath, [
        path.join(repoRoot, 'bin/m1prep.js'), 'boot', '--kernel', guest.image, '--initrd', guest.initrd, '--dtb', dtb,
        '--append', 'earlycon console=ttySAC0 m1prep.ip=192.0.2.2/24 m1prep.peer=192.0.2.1',
        '--net', `tap,ifname=${ours0},mac=52:54:00:aa:00:12`, '--timeout', '170', '--json',
      ]);
      const done = (out: string) => out.includes('M1PREP-NET-OK') || out.includes('M1PREP-NET-FAIL');
      await waitFor(() => (done(ours!.err) && done(qemuOut)) || ours!.exited, 170_000);
      ours.child.kill('SIGINT');
      const code = await ours.exit;
      const tail = ours.err.split('\n').slice(-30).join('\n');
      expect(ours.err, tail).toContain('M1PREP-NET-OK peer=192.0.2.1');
      expect(qemuOut.split('\n').slice(-20).join('\n')).toContain('M1PREP-NET-OK peer=192.0.2.2');
      expect(code, tail).toBe(0);
      const summary = JSON.parse(ours.out) as { nics: Array<{ mac: string; link: string; stats: { txFrames: number; rxFrames: number } }> };
      expect(summary.nics[0]!.link).toBe(`tap ${ours0}`);
      expect(summary.nics[0]!.stats.txFrames).toBeGreaterThanOrEqual(7);
      expect(summary.nics[0]!.stats.rxFrames).toBeGreaterThanOrEqual(7);
    } finally {
      qemu?.kill('SIGKILL');
      ours?.child.kill('SIGKILL');
      deleteLinks(bridge, ours0, theirs0);
    }
  });

  it.skipIf(!which('debugfs'))('with --disk-writable the guest\'s write lands in the image (debugfs reads it back)', async () => {
    const copy = path.join(work, 'writable.img');
    copyFileSync(disk.path, copy);
    const until = [`${INIT_MARKER} cpus=1`, 'M1PREP-DISK-WRITE-OK', 'M1PREP-INIT-DONE'];
    const dtb = deriveVmDtb(guest, 1, path.join(work, 't8103-virt-w.dtb'));
    const traceFile = path.join(work, 'exc-trace.txt');
    const args = [...m1prepBootArgs(guest, dtb, copy, 1, until, 120), '--disk-writable', '--trace', 'exc', '--trace-file', traceFile];
    const r = await runGuest(process.execPath, args, { until, timeoutMs: 150_000, stopWhenSeen: false });
    expect(r.code, r.output.split('\n').slice(-20).join('\n')).toBe(0);
    // debugfs (e2fsprogs) reads the ext2 image without mounting it: the file /init wrote is there.
    const cat = spawnSync('debugfs', ['-R', 'cat /written.txt', copy], { encoding: 'utf8' });
    expect(cat.stdout).toBe('written by the guest\n');
    expect(sha(disk.path)).toBe(diskSha);
    // --trace exc: busybox's system calls arrive as SVCs from EL0, delivered into the kernel at
    // VBAR_EL1 (ESR class 0x15); its first touches of fresh pages as data aborts (class 0x24).
    const trace = readFileSync(traceFile, 'utf8');
    expect(trace).toMatch(/^exc cpu0 svc ESR=0x56000000 ELR=0x[0-9a-f]+$/m);
    expect(trace).toMatch(/^exc cpu0 data abort ESR=0x92[0-9a-f]{6} ELR=0x[0-9a-f]+ FAR=0x[0-9a-f]+$/m);
  });
});


async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
}

interface Spawned {
  child: ReturnType<typeof spawn>;
  out: string;
  err: string;
  exited: boolean;
  exit: Promise<number | null>;
}

function spawnCollect(cmd: string, args: string[]): Spawned {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const s: Spawned = { child, out: '', err: '', exited: false, exit: Promise.resolve(null) };
  child.stdout!.on('data', (b: Buffer) => { s.out += b.toString('utf8'); });
  child.stderr!.on('data', (b: Buffer) => { s.err += b.toString('utf8'); });
  s.exit = new Promise((resolve) => child.on('close', (code) => { s.exited = true; resolve(code); }));
  return s;
}
