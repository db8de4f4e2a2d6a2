import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';
import { mibPerS, peakRssMiB } from './measure.js';
import { buildImage } from '../src/img/io-build.js';

// Image building throughput: a deterministic 1 GiB tree of 20,000 files (under /tmp, removed
// afterwards) to an HFS+ and an APFS image, against the same run's plain copy of the same bytes
// (read every file, write them one after another into one output file: the I/O floor of any
// image writer). Each measurement runs in its own node process so its peak RSS is its own.

const FILES = 20_000;
const TOTAL = 1 << 30;
const DIRS = 100;

/** xorshift32 bytes: incompressible, deterministic. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

function makeTree(root: string): number {
  const block = pattern(2 << 20, 20240601);
  const avg = Math.floor(TOTAL / FILES);
  let total = 0;
  for (let d = 0; d < DIRS; d++) mkdirSync(path.join(root, `dir${String(d).padStart(3, '0')}`), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    // Sizes from 1 byte to ~2 x average, deterministic; the last file takes up the remainder.
    const size = i === FILES - 1 ? TOTAL - total : 1 + ((i * 7919) % (2 * avg - 1));
    const off = (i * 4099) % (block.length - size);
    const body = Buffer.from(block.subarray(off, off + size));
    if (size >= 4) body.writeUInt32LE(i, 0);
    writeFileSync(path.join(root, `dir${String(i % DIRS).padStart(3, '0')}`, `file-${i}.bin`), body);
    total += size;
  }
  return total;
}

interface ChildResult { seconds: number; peakRssMiB: number; imageBytes?: number }

function plainCopy(root: string, out: string): void {
  const fd = openSync(out, 'w');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const d of readdirSync(root).sort()) {
    for (const f of readdirSync(path.join(root, d)).sort()) {
      const src = openSync(path.join(root, d, f), 'r');
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        let w = 0;
        while (w < n) w += writeSync(fd, buf, w, n - w);
      }
      closeSync(src);
    }
  }
  closeSync(fd);
}

function runChild(op: string, root: string, out: string): ChildResult {
  const t0 = process.hrtime.bigint();
  if (op === 'copy') plainCopy(root, out);
  let imageBytes: number | undefined;
  if (op === 'hfsplus' || op === 'apfs') {
    imageBytes = Number(buildImage({ fs: op, fromDir: root, output: out, label: 'BENCH', env: { SOURCE_DATE_EPOCH: '1700000000' } }).size);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, peakRssMiB: peakRssMiB(), imageBytes };
}

function child(op: string, root: string, out: string): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--ramdisk-op', op, root, out], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`ramdisk bench ${op} failed: ${r.stderr}`);
  rmSync(out, { force: true });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

/** Best of `n` runs (after the tree is in the page cache), by time; RSS of that run. */
function best(op: string, root: string, out: string, n = 2): ChildResult {
  let b: ChildResult | null = null;
  for (let i = 0; i < n; i++) {
    const r = child(op, root, out);
    if (!b || r.seconds < b.seconds) b = r;
  }
  return b!;
}

export default async function ramdiskBench(): Promise<BenchResult[]> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'm1prep-bench-ramdisk-'));
  try {
    const root = path.join(work, 'tree');
    const bytes = makeTree(root);
    const out = path.join(work, 'out.img');
    child('copy', root, out); // warm the page cache
    const copy = best('copy', root, out);
    const base = mibPerS(bytes, copy.seconds);
    const rows: BenchResult[] = [];
    for (const fs of ['hfsplus', 'apfs']) {
      const r = best(fs, root, out);
      const v = mibPerS(bytes, r.seconds);
      rows.push({
        name: `ramdisk build --fs ${fs} (1 GiB, ${FILES} files)`,
        value: `${v.toFixed(0)} MiB/s`,
        baseline: `plain read+write copy ${base.toFixed(0)} MiB/s`,
        ratio: v / base,
        peakRssMiB: r.peakRssMiB,
        note: `${r.seconds.toFixed(2)} s; image ${((r.imageBytes ?? 0) / 2 ** 20).toFixed(0)} MiB; copy peak RSS ${copy.peakRssMiB.toFixed(0)} MiB`,
      });
    }
    return rows;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const opIndex = process.argv.indexOf('--ramdisk-op');
if (opIndex > 0) {
  const [op, root, out] = process.argv.slice(opIndex + 1);
  process.stdout.write(JSON.stringify(runChild(op!, root!, out!)) + '\n');
}
