import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// `npm run bench`: runs every bench/*.bench.ts (compiled), each exporting
// `default async function (): Promise<BenchResult[]>`, and prints one table.
// Each benchmark reports a ratio against a baseline measured in the same run, and peak memory.

export interface BenchResult {
  name: string;
  /** Our figure, e.g. "212 MiB/s" or "0.41 s". */
  value: string;
  /** The same-run baseline and what it is, e.g. "zlib inflateSync 180 MiB/s". */
  baseline?: string;
  /** ours / baseline, > 1 means faster (for throughput) — stated per row in `note`. */
  ratio?: number;
  peakRssMiB?: number;
  note?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here).filter((f) => f.endsWith('.bench.js') && (only.length === 0 || only.some((o) => f.includes(o)))).sort();
const all: BenchResult[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(path.join(here, f)).href)) as { default: () => Promise<BenchResult[]> };
  process.stderr.write(`bench: ${f}\n`);
  const rs = await mod.default();
  for (const r of rs) {
    all.push(r);
    process.stdout.write(
      `${r.name.padEnd(48)} ${r.value.padEnd(16)} ${(r.ratio !== undefined ? r.ratio.toFixed(2) + 'x' : '').padEnd(8)} ${(r.baseline ?? '').padEnd(36)} ${r.peakRssMiB !== undefined ? `peak RSS ${r.peakRssMiB.toFixed(0)} MiB` : ''} ${r.note ?? ''}\n`,
    );
  }
}
if (process.env.BENCH_JSON) process.stdout.write(JSON.stringify(all, null, 2) + '\n');
