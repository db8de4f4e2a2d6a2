import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLayoutPath, loadLayout } from '../../src/dtb/layout.js';
import { tool } from '../../src/host/tools.js';
import { objectChecksumOk, sealObject } from '../../src/img/apfs/checksum.js';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { bootGuest, type BootSummary } from '../../src/vmm/session.js';
import { corpus, repoRoot, runCli } from '../helpers/cli.js';

// The guest's own parsers (its APFS and HFS+ readers) on ramdisks nobody here wrote — images made
// by macOS, checked against 7-Zip's reading of them — and on damaged ramdisks: whatever the damage,
// the sample must either boot or panic with a message, never hang, loop or run wild (a few dozen
// seeded mutations of the metadata per file system, each boot in-process in a fraction of a second).

const ok = Boolean(tool('clang') && tool('ld64.lld') && tryLoadUnicorn());
const MUTATIONS = 30;

let work: string;
let kernel: Uint8Array;
let adt: Uint8Array;
const images: Record<string, Uint8Array> = {};
const metadataOffsets: Record<string, number[]> = {};

// Deterministic damage per seed (a failure names a reproducible seed): bytes of SHA-256(fs:seed:i).
function randomness(fs: string, seed: number): () => number {
  let i = 0;
  return () => createHash('sha256').update(`${fs}:${seed}:${i++}`).digest().readUInt32LE(0) / 2 ** 32;
}

beforeAll(() => {
  if (!ok) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'm1prep-sample-ramdisks-'));
  const samples = process.env.M1PREP_SAMPLE_DIR || path.join(repoRoot, 'samples/build');
  expect(runCli(['sample', 'build', '12.3', '--out', samples], { timeoutMs: 600_000 }).code).toBe(0);
  const out = path.join(work, 'out');
  const p = runCli(['patch', '--profile', '12.3', '--kernelcache', path.join(samples, '12.3/kernelcache.im4p'), '--out', out]);
  expect(p.code, p.stderr).toBe(0);
  kernel = new Uint8Array(readFileSync(path.join(out, 'kernelcache.macho')));
  adt = new Uint8Array(readFileSync(path.join(out, 'devicetree.adt')));
  for (const fs of ['apfs', 'hfsplus']) {
    const img = path.join(work, `${fs}.img`);
    expect(runCli(['ramdisk', 'build', '--fs', fs, '--from', path.join(repoRoot, 'samples/ramdisk'), '-o', img]).code).toBe(0);
    images[fs] = new Uint8Array(readFileSync(img));
    metadataOffsets[fs] = [...images[fs]!.subarray(0, 65536).keys()].filter((i) => images[fs]![i] !== 0);
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function bootWith(ramdisk: Uint8Array, bootArgs = 'rd=md0'): Promise<{ s: BootSummary; console: string }> {
  let console = '';
  const s = await bootGuest({
    guest: 'xnu',
    inputs: { kernel, deviceTree: adt, ramdisk, bootArgs, darwin: '21.4.0' },
    layout: loadLayout(readFileSync(defaultLayoutPath(), 'utf8')),
    cpus: 1,
    backend: 'software',
    serial: { describe: 'test', onInput: null, write: (b) => { console += Buffer.from(b).toString('latin1'); }, close: () => {} },
    expect: ['M1PREP-SAMPLE-BOOT-OK'],
    fail: ['panic\\(cpu \\d+ caller'],
    stopOnSuccess: true,
    timeoutS: 20,
    hangS: 10,
    trace: new Set(),
  });
  return { s, console };
}

describe.skipIf(!ok)('sample guest on damaged ramdisks (skipped without clang, ld64.lld or unicorn)', { timeout: 300_000 }, () => {
  for (const fs of ['apfs', 'hfsplus']) {
    it(`${fs}: the undamaged image boots`, async () => {
      const { s, console } = await bootWith(images[fs]!);
      expect(s.outcome, console).toBe('success');
      expect(console).toContain(`fs=${fs}`);
    });

    it(`${fs}: ${MUTATIONS} damaged images each boot or panic, never hang`, async () => {
      const outcomes: Record<string, number> = {};
      for (let seed = 1; seed <= MUTATIONS; seed++) {
        const r = randomness(fs, seed);
        const img = images[fs]!.slice();
        // Damage the metadata (the non-zero bytes of the first 64 KiB: superblocks, B-tree nodes,
        // object maps), then for APFS re-seal the damaged objects' checksums, so the damage reaches
        // the structure parsers instead of stopping at the checksum check every time.
        const meta = metadataOffsets[fs]!;
        const n = 1 + Math.floor(r() * 6);
        for (let i = 0; i < n; i++) img[meta[Math.floor(r() * meta.length)]!] = Math.floor(r() * 256);
        if (fs === 'apfs' && r() < 0.75) {
          for (let b = 0; b + 4096 <= 65536; b += 4096) {
            const obj = img.subarray(b, b + 4096);
            if (objectChecksumOk(images[fs]!.subarray(b, b + 4096)) && !objectChecksumOk(obj)) sealObject(obj);
          }
        }
        const { s, console } = await bootWith(img);
        outcomes[s.outcome] = (outcomes[s.outcome] ?? 0) + 1;
        expect(['success', 'panic'], `seed ${seed}: ${s.outcome} ${s.detail}\n${console}`).toContain(s.outcome);
        if (s.outcome === 'panic') expect(console).toMatch(/panic\(cpu 0 caller 0x[0-9a-f]+\): (APFS|HFS\+|ramdisk|AMFI|Kernel)/);
      }
      // The damage must reach the parsers: some images no longer boot.
      expect(outcomes.panic ?? 0, JSON.stringify(outcomes)).toBeGreaterThan(0);
    });
  }
});

const sevenZip = tool('7zz');
const realImages = [
  { name: 'APFS made by macOS (GPT disk image)', file: 'fs/apfs-macos-gpt-2MiB.img', fs: 'apfs', paths: [['/hello.txt', 'hello.txt'], ['/README', 'README'], ['/.fseventsd/fseventsd-uuid', '.fseventsd/fseventsd-uuid']] },
  { name: 'journaled HFS+ made by hdiutil', file: 'fs/hfsplus-macos-journaled-from-src.dmg.hfs.gz', fs: 'hfsplus', paths: [['/Hello', 'src/Hello'], ['/World', 'src/World']] },
];

describe.skipIf(!ok || !sevenZip || !existsSync(corpus))('sample guest reads real images like 7-Zip does (skipped without 7zz or the shared corpus)', { timeout: 300_000 }, () => {
  for (const img of realImages) {
    it(`${img.name}: every file read by the guest matches 7zz`, async () => {
      let bytes = new Uint8Array(readFileSync(path.join(corpus, img.file)));
      if (img.file.endsWith('.gz')) bytes = new Uint8Array(gunzipSync(bytes));
      const plain = path.join(work, path.basename(img.file).replace(/\.gz$/, ''));
      writeFileSync(plain, bytes);
      for (const [guestPath, archivePath] of img.paths) {
        const want = spawnSync(sevenZip!, ['e', '-so', plain, archivePath!], { maxBuffer: 1 << 20 }).stdout;
        expect(want.length, `7zz could not read ${archivePath}`).toBeGreaterThan(0);
        const { s, console } = await bootWith(bytes, `rd=md0 marker=${guestPath}`);
        expect(s.outcome, console).toBe('success');
        const firstLine = want.toString('latin1').split('\n')[0]!.slice(0, 63);
        expect(console).toContain(`[ok] ramdisk ${img.fs} ${guestPath} (${want.length} bytes: "${firstLine}"`);
      }
    });
  }
});
