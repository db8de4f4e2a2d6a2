import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';

// Time from launch to the Linux guest's init marker on m1prep's VMM (software backend, 1 and 4
// CPUs) against qemu-system-aarch64 (TCG, -M virt -cpu max) booting the SAME Image with the same
// initramfs and the same disk in the same run (qemu builds its own device tree for its own
// machine). Also the peak RSS of each process (VmHWM), to check "guest RAM + under 300 MiB".
//
// The guest helpers below are shared with test/vmm/linux-guest.test.ts.

// Works from bench/ (tsx, vitest) and from dist/bench/ (compiled).
const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export interface LinuxGuest {
  dir: string;
  image: string;
  initrd: string;
  /** The upstream t8103-j274 FDT of the same kernel source: the base of the VM's FDT. */
  baseDtb: string;
}

export const INIT_MARKER = 'M1PREP-INIT-OK';
export const DONE_MARKER = 'M1PREP-INIT-DONE';
export const GUEST_RAM_MIB = 1024;

/** Build the guest (or take it from the cache): runs scripts/build-linux-guest.sh. */
export function buildLinuxGuest(log?: (s: string) => void): LinuxGuest {
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts/build-linux-guest.sh')], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 30 * 60_000,
  });
  if (r.status !== 0) throw new Error(`build-linux-guest.sh failed (${r.status ?? r.signal}):\n${(r.stderr ?? '').split('\n').slice(-30).join('\n')}`);
  log?.(r.stderr);
  const dir = r.stdout.trim().split('\n').pop()!;
  return { dir, image: path.join(dir, 'Image'), initrd: path.join(dir, 'initramfs.cpio.gz'), baseDtb: path.join(dir, 't8103-j274.dtb') };
}

/** The VM's FDT for `cpus` CPUs, derived from the base tree and the layout by the CLI. */
export function deriveVmDtb(g: LinuxGuest, cpus: number, out: string): string {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/m1prep.js'), 'dtree', 'layout', '--fdt', g.baseDtb, '--cpus', String(cpus), '-o', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`m1prep dtree layout failed (${r.status}): ${r.stderr}`);
  return out;
}

/**
 * An ext2 image holding marker.txt with a fresh random marker (so a boot cannot pass on stale
 * output), made with Debian's mke2fs from a staging directory (no root needed).
 */
export function makeMarkerDisk(dir: string): { path: string; marker: string } {
  const marker = `M1PREP-DISK-OK-${randomBytes(6).toString('hex')}`;
  const stage = path.join(dir, 'disk-root');
  mkdirSync(stage, { recursive: true });
  writeFileSync(path.join(stage, 'marker.txt'), `${marker}\n`);
  const img = path.join(dir, 'disk.img');
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext2', '-b', '1024', '-d', stage, img, '4M'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mke2fs failed: ${r.stderr}`);
  return { path: img, marker };
}

export interface GuestRun {
  /** Exit status, or null when we stopped it after the markers. */
  code: number | null;
  output: string;
  /** Milliseconds from spawn to each marker's first appearance. */
  seen: Map<string, number>;
  /** CPU seconds (user + system, all threads) the process had used when each marker appeared. */
  cpuAt: Map<string, number>;
  /** Peak resident set of the process in MiB (VmHWM), read just before it ended. */
  peakRssMiB: number | null;
  timedOut: boolean;
}

/**
 * Run a guest process, watching its output for markers; stop it once all `until` markers appeared
 * (when `stopWhenSeen`) or let it exit by itself. VmHWM is sampled until the end.
 */
export function runGuest(cmd: string, args: string[], opts: { until: string[]; timeoutMs: number; stopWhenSeen: boolean }): Promise<GuestRun> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    const seen = new Map<string, number>();
    const cpuAt = new Map<string, number>();
    let peak: number | null = null;
    let timedOut = false;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak ?? 0, Number(m[1]) / 1024);
      } catch { /* gone already */ }
    };
    const sampler = setInterval(sample, 100);
    const onData = (b: Buffer) => {
      output += b.toString('utf8');
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      for (const m of opts.until) {
        if (seen.has(m) || !output.includes(m)) continue;
        seen.set(m, ms);
        const cpu = cpuSeconds(child.pid);
        if (cpu !== null) cpuAt.set(m, cpu);
      }
      if (opts.stopWhenSeen && seen.size === opts.until.length) { sample(); child.kill('SIGKILL'); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => { timedOut = true; sample(); child.kill('SIGKILL'); }, opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve({ code, output, seen, cpuAt, peakRssMiB: peak, timedOut });
    });
  });
}

/** utime + stime of a live process from /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

/** qemu's own machine: GICv3, PL011, PSCI; the same Image, initramfs and disk (snapshot: never written). */
export function qemuArgs(g: LinuxGuest, disk: string, cpus: number): string[] {
  return [
    '-M', 'virt', '-cpu', 'max', '-smp', String(cpus), '-m', String(GUEST_RAM_MIB),
    '-nographic', '-no-reboot', '-nic', 'none',
    '-kernel', g.image, '-initrd', g.initrd,
    '-append', 'console=ttyAMA0 m1prep.poweroff',
    '-drive', `if=none,id=d0,file=${disk},format=raw,snapshot=on`,
    '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on',
  ];
}

/** m1prep's own machine, through the CLI as a user runs it. */
export function m1prepBootArgs(g: LinuxGuest, dtb: string, disk: string, cpus: number, expect: string[], timeoutS: number, append = ''): string[] {
  return [
    path.join(repoRoot, 'bin/m1prep.js'), 'boot',
    '--kernel', g.image, '--initrd', g.initrd, '--dtb', dtb, '--disk', disk,
    '--append', `earlycon console=ttySAC0${append ? ' ' + append : ''}`,
    '--cpus', String(cpus), '--verify', '--timeout', String(timeoutS),
    ...expect.flatMap((e) => ['--expect', e]),
  ];
}

export default async function bench(): Promise<BenchResult[]> {
  const g = buildLinuxGuest();
  const work = mkdtempSync(path.join(tmpdir(), 'm1prep-linux-bench-'));
  const results: BenchResult[] = [];
  try {
    const disk = makeMarkerDisk(work);
    const until = [INIT_MARKER, disk.marker];
    for (const cpus of [1, 4]) {
      const q = await runGuest('qemu-system-aarch64', qemuArgs(g, disk.path, cpus), { until, timeoutMs: 120_000, stopWhenSeen: true });
      const qms = q.seen.get(INIT_MARKER);
      const dtb = deriveVmDtb(g, cpus, path.join(work, `t8103-virt-${cpus}.dtb`));
      const ours = await runGuest(process.execPath, m1prepBootArgs(g, dtb, disk.path, cpus, until, 120), { until, timeoutMs: 150_000, stopWhenSeen: false });
      const oms = ours.seen.get(INIT_MARKER);
      const ok = oms !== undefined && ours.seen.has(disk.marker) && ours.code === 0;
      const name = `linux boot to /init marker, ${cpus} CPU${cpus > 1 ? 's' : ''}`;
      results.push({
        name: `${name} (wall)`,
        value: ok ? `${(oms / 1000).toFixed(2)} s` : `failed (${ours.timedOut ? 'timeout' : `exit ${ours.code}`})`,
        baseline: qms !== undefined ? `qemu TCG virt ${(qms / 1000).toFixed(2)} s (${q.peakRssMiB?.toFixed(0) ?? '?'} MiB)` : 'qemu failed',
        ratio: ok && qms !== undefined ? oms / qms : undefined,
        peakRssMiB: ours.peakRssMiB ?? undefined,
        note: `ours / qemu wall time from launch (goal <= 1.5); guest RAM ${GUEST_RAM_MIB} MiB, so the memory budget is ${GUEST_RAM_MIB + 300} MiB`,
      });
      // CPU time is steadier than wall time on a shared machine; qemu's counts all its threads.
      const oc = ours.cpuAt.get(INIT_MARKER), qc = q.cpuAt.get(INIT_MARKER);
      results.push({
        name: `${name} (CPU time)`,
        value: ok && oc !== undefined ? `${oc.toFixed(2)} s` : 'n/a',
        baseline: qc !== undefined ? `qemu TCG virt ${qc.toFixed(2)} s` : 'n/a',
        ratio: ok && oc !== undefined && qc ? oc / qc : undefined,
        note: 'ours / qemu user+system CPU seconds used up to the marker',
      });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
