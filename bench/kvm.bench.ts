import { existsSync } from 'node:fs';
import path from 'node:path';
import { homedir } from 'node:os';
import type { BenchResult } from './run.js';
import { canRunHarness, parseGuestBench, readHarness, runHarness, type GuestBench, type HarnessResult } from './kvm-harness.js';

// KVM backend vs software backend, inside the nested harness (scripts/kvm-harness/run.sh): the
// same bench guest (guests/kvm-test/bench.S) on both backends in the same L1 boot, timed by the
// guest's own counter, and the Linux proof guest's boot to its init marker. Everything runs under
// qemu TCG (L1) — KVM's exits cost emulated EL2 round trips and Node runs without a native JIT
// speed-up — so only the ratios mean something here; on an M1 running Asahi Linux the absolute
// figures are far lower and the ratios differ too.
// M1PREP_KVM_HARNESS_DIR=DIR reads the results of an earlier run instead of running the harness.

/** Microseconds per operation, at the counter frequency the guest read from CNTFRQ_EL0 (KVM: the
 *  L1 host's, 1 GHz under qemu 10; software backend: Unicorn's 62.5 MHz, CLOCK_MONOTONIC / 16). */
function perOp(b: GuestBench, which: 'mmio' | 'ipi'): number {
  const hz = b.freqHz;
  const ticks = which === 'mmio' ? b.mmioTicks : b.ipiTicks;
  const n = which === 'mmio' ? b.mmioN : b.ipiN;
  return (ticks / hz / n) * 1e6;
}

function harness(): HarnessResult | null {
  const dir = process.env.M1PREP_KVM_HARNESS_DIR;
  if (dir) return readHarness(dir);
  if (!canRunHarness) return null;
  const cached = path.join(process.env.M1PREP_CACHE ?? path.join(homedir(), '.cache/m1prep'), 'kvm-harness-run');
  return runHarness(existsSync(cached) ? cached : undefined);
}

export default async function bench(): Promise<BenchResult[]> {
  const h = harness();
  if (!h) return [{ name: 'kvm backend (nested harness)', value: 'skipped', note: 'needs apt-get (for the trixie qemu), aarch64-linux-gnu-gcc, linux-source-6.1 and the arm64 cross runtime' }];
  const run = (n: string) => h.runs.find((r) => r.name === n);
  const kvm = run('bench-kvm'), sw = run('bench-software');
  const bk = kvm ? parseGuestBench(kvm.output) : null;
  const bs = sw ? parseGuestBench(sw.output) : null;
  const note = 'nested: L1 is qemu TCG, so only ratios mean something; on real hardware the figures differ';
  const rows: BenchResult[] = [];
  const row = (name: string, which: 'mmio' | 'ipi', what: string) => {
    if (!bk) {
      rows.push({ name, value: 'failed', note: `the bench guest did not report on KVM (${h.dir})` });
      return;
    }
    const k = perOp(bk, which);
    const s = bs ? perOp(bs, which) : undefined;
    rows.push({
      name,
      value: `${k.toFixed(1)} us`,
      baseline: s !== undefined ? `software backend ${s.toFixed(1)} us (same guest, same L1)` : 'software backend not available in L1',
      ratio: s !== undefined ? s / k : undefined,
      note: `${what}; ratio = software / KVM time (> 1: KVM faster); ${note}`,
    });
  };
  row('MMIO exit (UART register load), KVM backend', 'mmio', `${bk?.mmioN ?? 0} loads, served in the vCPU thread`);
  row('FastIPI round trip (MSR -> FIQ vector), KVM backend', 'ipi', `${bk?.ipiN ?? 0} self-IPIs`);
  // The vCPU threads' hot path against handing every exit to the main thread, same guest, same L1.
  const fw = run('bench-kvm-forwarded');
  const bf = fw ? parseGuestBench(fw.output) : null;
  if (bk && bf) {
    for (const [which, what] of [['mmio', 'MMIO exit (UART register load)'], ['ipi', 'FastIPI round trip']] as const) {
      const hot = perOp(bk, which), fwd = perOp(bf, which);
      rows.push({
        name: `${what}, KVM: vCPU-thread hot path`,
        value: `${hot.toFixed(1)} us`,
        baseline: `every exit forwarded to the main thread (M1PREP_KVM_HOT_EXITS=0) ${fwd.toFixed(1)} us`,
        ratio: fwd / hot,
        note: `ratio = forwarded / hot (> 1: the hot path is faster); ${note}`,
      });
    }
  }
  const wall = (o: string) => Number(/^wall time\s+([\d.]+) s/m.exec(o)?.[1] ?? NaN);
  const lh = run('linux-1-kvm'), lf = run('linux-1-kvm-forwarded');
  if (lh?.rc === 0 && lf?.rc === 0) {
    rows.push({
      name: 'Linux boot to the init marker, 1 vCPU, KVM: vCPU-thread hot path',
      value: `${wall(lh.output).toFixed(1)} s`,
      baseline: `every exit forwarded to the main thread ${wall(lf.output).toFixed(1)} s`,
      ratio: wall(lf.output) / wall(lh.output),
      note: `ratio = forwarded / hot; ${note}`,
    });
  }
  for (const cpus of [1, 2]) {
    const lk = run(`linux-${cpus}-kvm`);
    if (!lk) continue;
    const ls = run(`linux-${cpus}-software`);
    const okK = lk.rc === 0, okS = ls?.rc === 0;
    rows.push({
      name: `Linux boot to the init marker, ${cpus} vCPU${cpus > 1 ? 's' : ''}, KVM backend (nested)`,
      value: okK ? `${wall(lk.output).toFixed(1)} s` : `failed (exit ${lk.rc})`,
      baseline: ls ? `software backend ${okS ? `${wall(ls.output).toFixed(1)} s` : `failed (exit ${ls.rc})`}` : 'software backend not run in L1',
      ratio: okK && okS ? wall(ls!.output) / wall(lk.output) : undefined,
      note: `boot wall time from m1prep's summary (Node start-up excluded); ratio = software / KVM; ${note}`,
    });
  }
  return rows;
}
