import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { which } from '../src/host/tools.js';

// Shared by test/vmm/kvm-nested.test.ts and bench/kvm.bench.ts: runs the nested KVM harness
// (scripts/kvm-harness/run.sh) and reads what the L1 host printed on its serial console.

const here = path.dirname(fileURLToPath(import.meta.url));
/** bench/ in the source tree, dist/bench/ once compiled. */
const repoRoot = existsSync(path.join(here, '../package.json')) ? path.resolve(here, '..') : path.resolve(here, '../..');

export type L1Boot = 'patched' | 'stock';

export interface HarnessRun {
  boot: L1Boot;
  name: string;
  rc: number;
  ms: number;
  /** Everything m1prep printed between KVMH-BEGIN and KVMH-END. */
  output: string;
}

export interface HarnessResult {
  dir: string;
  runs: HarnessRun[];
  logs: Record<L1Boot, string>;
  /** The L1 boot reached the end of its /init. */
  done: Record<L1Boot, boolean>;
  results: string;
}

export const harnessTools = {
  apt: which(['apt-get']),
  cross: which(['aarch64-linux-gnu-gcc']),
  source: existsSync('/usr/src/linux-source-6.1.tar.xz'),
  libs: existsSync('/usr/aarch64-linux-gnu/lib/libstdc++.so.6'),
};
export const canRunHarness = Boolean(harnessTools.apt && harnessTools.cross && harnessTools.source && harnessTools.libs);

/** Split one L1 console log into runs. */
export function parseHarnessLog(log: string, boot: L1Boot): HarnessRun[] {
  const runs: HarnessRun[] = [];
  const re = /^KVMH-BEGIN (\S+)\r?\n([\s\S]*?)^KVMH-END \1 rc=(\d+) ms=(-?\d+)/gm;
  for (const m of log.matchAll(re)) runs.push({ boot, name: m[1]!, output: m[2]!, rc: Number(m[3]), ms: Number(m[4]) });
  return runs;
}

/** Build everything (cached) and boot L1 twice; about 15-20 minutes from scratch on 2 cores. */
export function runHarness(outDir?: string): HarnessResult {
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts/kvm-harness/run.sh'), ...(outDir ? [outDir] : [])], {
    cwd: repoRoot, encoding: 'utf8', maxBuffer: 256 << 20, timeout: 60 * 60_000,
  });
  if (r.status !== 0) throw new Error(`kvm-harness/run.sh failed (${r.status ?? r.signal}):\n${(r.stderr ?? '').split('\n').slice(-40).join('\n')}`);
  const dir = r.stdout.trim().split('\n').pop()!;
  return readHarness(dir);
}

export function readHarness(dir: string): HarnessResult {
  const read = (f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'latin1') : '');
  const logs = { patched: read('patched.log'), stock: read('stock.log') };
  return {
    dir,
    logs,
    runs: [...parseHarnessLog(logs.patched, 'patched'), ...parseHarnessLog(logs.stock, 'stock')],
    done: { patched: /^KVMH-DONE/m.test(logs.patched), stock: /^KVMH-DONE/m.test(logs.stock) },
    results: read('results.txt'),
  };
}

export interface GuestBench {
  freqHz: number;
  mmioN: number;
  mmioTicks: number;
  ipiN: number;
  ipiTicks: number;
}

/** The bench guest's line (guests/kvm-test/bench.S), hex fields. */
export function parseGuestBench(output: string): GuestBench | null {
  const m = /KVMBENCH freq=([0-9a-f]+) mmio_n=([0-9a-f]+) mmio_ticks=([0-9a-f]+) ipi_n=([0-9a-f]+) ipi_ticks=([0-9a-f]+)/.exec(output);
  if (!m) return null;
  const h = (i: number) => parseInt(m[i]!, 16);
  return { freqHz: h(1), mmioN: h(2), mmioTicks: h(3), ipiN: h(4), ipiTicks: h(5) };
}
