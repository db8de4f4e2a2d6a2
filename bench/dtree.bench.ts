import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';
import { timeBest, peakRssMiB } from './measure.js';
import { parseAdt, serializeAdt } from '../src/dtb/adt.js';
import { parseFdt, serializeFdt } from '../src/dtb/fdt.js';
import { adtToJson } from '../src/dtb/tree-json.js';
import { deriveAdt } from '../src/dtb/derive-adt.js';
import { defaultLayoutPath, loadLayout } from '../src/dtb/layout.js';
import { toJson } from '../src/util/hex.js';
import { tool } from '../src/host/tools.js';

// Device trees: parse + serialize of the real 285 KB Mac mini ADT, against JSON.parse +
// JSON.stringify of the same tree's JSON form in the same run (the cost of merely reading and
// writing that much structured data in V8); deriving the VM's ADT; and for FDTs, our parse +
// serialize of a large dtc-built blob against dtc itself converting the same blob (dtb -> dtb).
// Times are best of 20 after a warm-up.

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const corpus = path.resolve(repoRoot, '../shared/corpus');
const ms = (s: number) => `${(s * 1000).toFixed(2)} ms`;

/** A large FDT built by dtc: the ADT's node/property structure rewritten as dts (about the ADT's size). */
function bigFdt(dtc: string, adtBytes: Uint8Array): Uint8Array {
  const root = parseAdt(adtBytes);
  const lines: string[] = ['/dts-v1/;'];
  let k = 0;
  const visit = (n: typeof root, depth: number) => {
    lines.push(`${'  '.repeat(depth)}${depth === 0 ? '/' : `n${k++}`} {`);
    n.properties.forEach((p, i) => {
      const bytes = [...p.value].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      lines.push(`${'  '.repeat(depth + 1)}p${i}-${p.name.replace(/[^A-Za-z0-9,._+-]/g, '_')} = [${bytes}];`);
    });
    n.children.forEach((c) => visit(c, depth + 1));
    lines.push(`${'  '.repeat(depth)}};`);
  };
  visit(root, 0);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-bench-'));
  try {
    writeFileSync(path.join(dir, 'big.dts'), lines.join('\n'));
    const r = spawnSync(dtc, ['-q', '-I', 'dts', '-O', 'dtb', '-o', path.join(dir, 'big.dtb'), path.join(dir, 'big.dts')]);
    if (r.status !== 0) throw new Error(`dtc: ${r.stderr}`);
    return new Uint8Array(readFileSync(path.join(dir, 'big.dtb')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function (): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const adtBytes = new Uint8Array(readFileSync(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre')));

  const ours = await timeBest(() => serializeAdt(parseAdt(adtBytes)), 20);
  const jsonText = toJson(adtToJson(parseAdt(adtBytes)), 0);
  const baseline = await timeBest(() => JSON.stringify(JSON.parse(jsonText)), 20);
  results.push({
    name: 'ADT parse+serialize (j274, 285 KB)',
    value: ms(ours),
    baseline: `JSON.parse+stringify ${(jsonText.length / 1024).toFixed(0)} KB: ${ms(baseline)}`,
    ratio: baseline / ours,
    peakRssMiB: peakRssMiB(),
    note: 'ratio > 1: faster than the baseline; goal < 10 ms',
  });

  const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
  const base = parseAdt(adtBytes);
  const derive = await timeBest(() => serializeAdt(deriveAdt(base, layout)), 20);
  results.push({ name: 'deriveAdt + serialize (j274 -> t8103-virt)', value: ms(derive), baseline: `ADT parse+serialize ${ms(ours)}`, ratio: ours / derive, peakRssMiB: peakRssMiB() });

  const dtc = tool('dtc');
  if (dtc) {
    const blob = bigFdt(dtc, adtBytes);
    const oursFdt = await timeBest(() => serializeFdt(parseFdt(blob)), 20);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-bench-'));
    try {
      const f = path.join(dir, 'big.dtb');
      writeFileSync(f, blob);
      const dtcTime = await timeBest(() => spawnSync(dtc, ['-q', '-I', 'dtb', '-O', 'dtb', '-o', path.join(dir, 'out.dtb'), f]), 5);
      results.push({
        name: `FDT parse+serialize (${(blob.length / 1024).toFixed(0)} KB, dtc-built)`,
        value: ms(oursFdt),
        baseline: `dtc -I dtb -O dtb: ${ms(dtcTime)}`,
        ratio: dtcTime / oursFdt,
        peakRssMiB: peakRssMiB(),
        note: 'dtc time includes its process start',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (!existsSync('/usr/bin/dtc')) {
    results.push({ name: 'FDT parse+serialize', value: 'skipped', note: 'dtc is not installed' });
  }
  return results;
}
