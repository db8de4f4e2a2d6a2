import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import type { BenchResult } from './run.js';
import { timeBest, mibPerS, peakRssMiB } from './measure.js';
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

type Op = 'lzfse-dec' | 'lzfse-enc' | 'lzvn-dec' | 'lzvn-enc' | 'lzss-dec' | 'lzss-enc' | 'inflate' | 'deflate6';

interface ChildResult { seconds: number; inputBytes: number; outputBytes: number; peakRssMiB: number }

/** Runs one operation (in a child process): best of 3 after a warm-up. */
async function runOp(op: Op): Promise<ChildResult> {
  const src = input();
  const n = src.length;
  let work: () => Uint8Array;
  switch (op) {
    case 'lzfse-dec': { const c = lzfseEncode(src); work = () => lzfseDecode(c); break; }
    case 'lzfse-enc': work = () => lzfseEncode(src); break;
    case 'lzvn-dec': { const c = lzvnEncode(src); work = () => lzvnDecode(c, n); break; }
    case 'lzvn-enc': work = () => lzvnEncode(src); break;
    case 'lzss-dec': { const c = lzssEncode(src); work = () => lzssDecode(c, n).data; break; }
    case 'lzss-enc': work = () => lzssEncode(src); break;
    case 'inflate': { const c = zlib.deflateSync(src, { level: 6 }); work = () => zlib.inflateSync(c); break; }
    case 'deflate6': work = () => zlib.deflateSync(src, { level: 6 }); break;
  }
  let out: Uint8Array = new Uint8Array(0);
  const seconds = await timeBest(() => { out = work(); }, 3);
  return { seconds, inputBytes: n, outputBytes: out.length, peakRssMiB: peakRssMiB() };
}

function child(op: Op): ChildResult {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--codec-op', op], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`codec bench ${op} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

export default async function codecsBench(): Promise<BenchResult[]> {
  const res = Object.fromEntries(
    (['inflate', 'deflate6', 'lzfse-dec', 'lzfse-enc', 'lzvn-dec', 'lzvn-enc', 'lzss-dec', 'lzss-enc'] as Op[]).map((op) => [op, child(op)]),
  ) as Record<Op, ChildResult>;
  const size = res.inflate.outputBytes;
  const mib = (r: ChildResult) => mibPerS(size, r.seconds);
  const inflate = mib(res.inflate);
  const deflate = mib(res.deflate6);
  const row = (name: string, r: ChildResult, base: number, baseName: string, note: string): BenchResult => ({
    name,
    value: `${mib(r).toFixed(0)} MiB/s`,
    baseline: `${baseName} ${base.toFixed(0)} MiB/s`,
    ratio: mib(r) / base,
    peakRssMiB: r.peakRssMiB,
    note,
  });
  const ratioOf = (compressed: number) => `${((compressed / size) * 100).toFixed(1)}% of input`;
  return [
    row(`LZFSE decode ${(size / 2 ** 20).toFixed(0)} MiB`, res['lzfse-dec'], inflate, 'zlib inflateSync', 'decoded MiB/s; >1x = faster'),
    row('LZFSE encode', res['lzfse-enc'], deflate, 'zlib deflateSync(6)', `size ${ratioOf(res['lzfse-enc'].outputBytes)} vs zlib ${ratioOf(res.deflate6.outputBytes)}`),
    row('LZVN decode', res['lzvn-dec'], inflate, 'zlib inflateSync', ''),
    row('LZVN encode', res['lzvn-enc'], deflate, 'zlib deflateSync(6)', `size ${ratioOf(res['lzvn-enc'].outputBytes)}`),
    row('LZSS decode', res['lzss-dec'], inflate, 'zlib inflateSync', ''),
    row('LZSS encode', res['lzss-enc'], deflate, 'zlib deflateSync(6)', `size ${ratioOf(res['lzss-enc'].outputBytes)}`),
  ];
}

const opIndex = process.argv.indexOf('--codec-op');
if (opIndex > 0) {
  const r = await runOp(process.argv[opIndex + 1] as Op);
  process.stdout.write(JSON.stringify(r) + '\n');
}
