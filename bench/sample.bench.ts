import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BenchResult } from './run.js';
import { peakRssMiB } from './measure.js';
import { defaultLayoutPath, loadLayout } from '../src/dtb/layout.js';
import { tool } from '../src/host/tools.js';
import { buildSample } from '../src/samples/build.js';
import { loadFlavours } from '../src/samples/flavours.js';
import { packageRoot, sampleRoot } from '../src/samples/paths.js';
import { tryLoadUnicorn } from '../src/vmm/cpu/unicorn/ffi.js';
import { bootGuest } from '../src/vmm/session.js';

// The bundled sample: building one flavour from source (against the bare clang + ld64.lld work
// inside it), and booting it to its marker on the software backend with 1 and 4 CPUs (4 against 1).

function patchOut(dir: string, im4p: string): string {
  const out = path.join(dir, 'out');
  const r = spawnSync(process.execPath, [path.join(packageRoot(), 'bin/m1prep.js'), 'patch', '--profile', '12.3', '--kernelcache', im4p, '--out', out, '-q'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`m1prep patch failed: ${r.stderr}`);
  return out;
}

export default async function (): Promise<BenchResult[]> {
  if (!tool('clang') || !tool('ld64.lld') || !tryLoadUnicorn()) return [{ name: 'sample', value: 'skipped', note: 'needs clang, ld64.lld and libunicorn' }];
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-bench-sample-'));
  try {
    const flavour = loadFlavours(path.join(sampleRoot(), 'flavours.yaml')).find((f) => f.profile === '12.3')!;
    const steps: Array<{ step: string; at: bigint }> = [];
    const t0 = process.hrtime.bigint();
    const b = await buildSample(flavour, { sampleRoot: sampleRoot(), outRoot: dir, force: true, onStep: (step) => steps.push({ step, at: process.hrtime.bigint() }) });
    const total = Number(process.hrtime.bigint() - t0) / 1e9;
    // clang + ld64.lld: from the start to the "build the MH_FILESET" step.
    const fileset = steps.find((s) => s.step.startsWith('build the MH_FILESET'))!;
    const toolchain = Number(fileset.at - t0) / 1e9;

    const out = patchOut(dir, b.im4p);
    const m = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { artifacts: Record<string, { path: string }> };
    const inputs = {
      kernel: new Uint8Array(readFileSync(path.join(out, m.artifacts.kernel!.path))),
      deviceTree: new Uint8Array(readFileSync(path.join(out, m.artifacts.devicetree!.path))),
      ramdisk: new Uint8Array(readFileSync(path.join(out, m.artifacts.ramdisk!.path))),
      bootArgs: 'rd=md0', darwin: flavour.darwin,
    };
    const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
    const bootTime = async (cpus: number) => {
      let best = Infinity, instructions = 0n;
      for (let i = 0; i < 3; i++) {
        const s = await bootGuest({
          guest: 'xnu', inputs, layout, cpus, backend: 'software', serial: { describe: 'bench', onInput: null, write: () => {}, close: () => {} },
          expect: ['M1PREP-SAMPLE-BOOT-OK'], fail: ['panic\\(cpu'], stopOnSuccess: true, timeoutS: 60, hangS: 20, trace: new Set(),
        });
        if (s.outcome !== 'success') throw new Error(`sample boot: ${s.outcome} ${s.detail}`);
        if (s.wallSeconds < best) { best = s.wallSeconds; instructions = s.guestInstructions ?? 0n; }
      }
      return { best, instructions };
    };
    const one = await bootTime(1);
    const four = await bootTime(4);
    return [
      { name: 'sample build 12.3 from source', value: `${total.toFixed(2)} s`, baseline: `clang + ld64.lld alone ${toolchain.toFixed(2)} s`, ratio: total / toolchain, note: '(ratio: whole build / compile+link; the rest is fileset + LZFSE IM4P)' },
      { name: 'sample boot to marker, 1 CPU', value: `${one.best.toFixed(3)} s`, note: `(${one.instructions} guest instructions at least)`, peakRssMiB: peakRssMiB() },
      { name: 'sample boot to marker, 4 CPUs', value: `${four.best.toFixed(3)} s`, baseline: `1 CPU ${one.best.toFixed(3)} s`, ratio: four.best / one.best, note: '(ratio: 4-CPU time / 1-CPU time)', peakRssMiB: peakRssMiB() },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
