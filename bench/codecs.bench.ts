import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { BenchResult } from './run.js';
import { mibPerS, peakRssMiB } from './measure.js';
import { lzfseDecode } from '../src/macho/lzfse-decode.js';
import { lzfseEncode } from '../src/macho/lzfse-encode.js';
import { lzvnDecode } from '../src/macho/lzvn-decode.js';
import { lzvnEncode } from '../src/macho/lzvn-encode.js';
import { lzssDecode, lzssEncode } from '../src/macho/lzss.js';

// Codec throughput on a 51 MiB binary input, against node's zlib on the same data in the same run:
// LZFSE decode vs inflateSync, LZFSE encode vs deflateSync level 6 (and LZVN, LZSS likewise).
// Each measurement runs in its own node process so that its peak RSS is its own.
// Input: 8 x (libsqlite3.so + mixed-5MiB.bin) from the shared corpus (x86-64 code, text, a
// device tree, zeros, random bytes, Mach-O), deterministic on every machine.

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const corpus = path.resolve(repoRoot, '../shared/corpus');

function input(): Uint8Array {
  const a = readFileSync(path.join(corpus, 'lzfse/libsqlite3.so.0.8.6.bin'));
  const b = readFileSync(path.join(corpus, 'lzfse/mixed-5MiB.bin'));
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) parts.push(a, b);
  return Buffer.concat(parts);
}

type Op = 'lzfse-dec' | 'lzfse-enc' | 'lzvn-dec' | 'lzvn-enc' | 'lzss-dec' | 'lzss-enc';

interface ChildResult {
  seconds: number;
  baselineSeconds: number;
  inputBytes: number;
  /** Size of what the operation produced (compressed size for encoders). */
  outputBytes: number;
  baselineOutputBytes: number;
  /** Peak RSS of the process after our codec ran (before the baseline did). */
  peakRssMiB: number;
}

/**
 * CPU seconds (user + system) of one run. On a shared machine, wall time mostly measures the
 * other tenants; both codecs here are single-threaded, so CPU time is their cost.
 */
function cpuSeconds(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const u = process.cpuUsage(t);
  return (u.user + u.system) / 1e6;
}

/**
 * One codec operation and its zlib baseline, in this (child) process: a warm-up run of ours
 * gives the peak RSS; then ours and the baseline alternate, best of 3 each, so that both see
 * the same machine load.
 */
async function runOp(op: Op): Promise<ChildResult> {
  const src = input();
  const n = src.length;
  const decode = op.endsWith('-dec');
  let work: () => Uint8Array;
  switch (op) {
    case 'lzfse-dec': { const c = lzfseEncode(src); work = () => lzfseDecode(c); break; }
    case 'lzfse-enc': work = () => lzfseEncode(src); break;
    case 'lzvn-dec': { const c = lzvnEncode(src); work = () => lzvnDecode(c, n); break; }
    case 'lzvn-enc': work = () => lzvnEncode(src); break;
    case 'lzss-dec': { const c = lzssEncode(src); work = () => lzssDecode(c, n).data; break; }
    case 'lzss-enc': work = () => lzssEncode(src); break;
  }
  let out = work();
  const peak = peakRssMiB();
  const z = zlib.deflateSync(src, { level: 6 });
  const baseline = decode ? () => zlib.inflateSync(z) : () => zlib.deflateSync(src, { level: 6 });
  let base = baseline();
  let seconds = Infinity;
  let baselineSeconds = Infinity;
  for (let i = 0; i < 3; i++) {
    seconds = Math.min(seconds, cpuSeconds(() => { out = work(); }));
    baselineSeconds = Math.min(baselineSeconds, cpuSeconds(() => { base = baseline(); }));
  }
  return { seconds, baselineSeconds, inputBytes: n, outputBytes: out.length, baselineOutputBytes: base.length, peakRssMiB: peak };
}

function child(op: Op): ChildResult {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--codec-op', op], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`codec bench ${op} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

export default async function codecsBench(): Promise<BenchResult[]> {
  const row = (name: string, op: Op): BenchResult => {
    const r = child(op);
    const mib = mibPerS(r.inputBytes, r.seconds);
    const base = mibPerS(r.inputBytes, r.baselineSeconds);
    const decode = op.endsWith('-dec');
    const pct = (b: number) => `${((b / r.inputBytes) * 100).toFixed(1)}%`;
    return {
      name: `${name} (${(r.inputBytes / 2 ** 20).toFixed(0)} MiB)`,
      value: `${mib.toFixed(0)} MiB/s`,
      baseline: `${decode ? 'zlib inflateSync' : 'zlib deflateSync(6)'} ${base.toFixed(0)} MiB/s`,
      ratio: mib / base,
      peakRssMiB: r.peakRssMiB,
      note: `per CPU second; ${decode ? 'MiB/s of decoded data' : `output ${pct(r.outputBytes)} of input vs zlib ${pct(r.baselineOutputBytes)}`}`,
    };
  };
  return [
    row('LZFSE decode', 'lzfse-dec'),
    row('LZFSE encode', 'lzfse-enc'),
    row('LZVN decode', 'lzvn-dec'),
    row('LZVN encode', 'lzvn-enc'),
    row('LZSS decode', 'lzss-dec'),
    row('LZSS encode', 'lzss-enc'),
  ];
}

const opIndex = process.argv.indexOf('--codec-op');
if (opIndex > 0) {
  const r = await runOp(process.argv[opIndex + 1] as Op);
  process.stdout.write(JSON.stringify(r) + '\n');
}
