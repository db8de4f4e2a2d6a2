import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { FormatError } from '../../src/errors.js';
import { openVolume } from '../../src/img/open.js';
import { bytesSource } from '../../src/img/source.js';
import { buildImage } from '../../src/img/io-build.js';
import { makeRichTree, tempDir, removeDir } from './trees.js';
import { objectChecksumOk, sealObject } from '../../src/img/apfs/checksum.js';

// Mutation fuzzing of the image readers: corrupt bytes of real and generated images (mostly in
// their metadata), then open, walk and read everything. Only FormatError may come out.

const corpusFs = path.resolve(__dirname, '../../../shared/corpus/fs');
let work: string;

/** xorshift32: deterministic mutations, so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

export function exercise(img: Uint8Array): void {
  const vol = openVolume(bytesSource(img));
  let n = 0;
  for (const e of vol.walk()) {
    if (++n > 5000) break;
    if (e.kind !== 'file' && e.kind !== 'symlink') continue;
    let bytes = 0;
    for (const c of vol.readEntry(e)) {
      bytes += c.length;
      if (bytes > 4 << 20) break;
    }
  }
}

/** Mutate `img` in place at `count` positions drawn from `ranges`, run `fn`, restore. */
export function fuzz(img: Uint8Array, ranges: [number, number][], iterations: number, seed: number): { formatErrors: number; ok: number } {
  const r = rng(seed);
  let formatErrors = 0;
  let ok = 0;
  for (let i = 0; i < iterations; i++) {
    const saved: [number, number][] = [];
    const count = 1 + (r() % 8);
    for (let k = 0; k < count; k++) {
      const [a, b] = ranges[r() % ranges.length]!;
      const pos = a + (r() % Math.max(1, b - a));
      saved.push([pos, img[pos]!]);
      const mode = r() % 4;
      img[pos] = mode === 0 ? 0 : mode === 1 ? 0xff : mode === 2 ? img[pos]! ^ (1 << (r() % 8)) : r() & 0xff;
    }
    try {
      exercise(img);
      ok++;
    } catch (e) {
      if (!(e instanceof FormatError)) {
        throw new Error(`iteration ${i} (seed ${seed}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} ${(e as Error)?.stack?.split("\n").slice(1, 4).join(" ")}`);
      }
      formatErrors++;
    } finally {
      for (const [pos, v] of saved.reverse()) img[pos] = v;
    }
  }
  return { formatErrors, ok };
}

/** Byte ranges of an HFS+ volume's header and B-tree files (from its own volume header). */
function hfsMetadataRanges(img: Uint8Array, base: number): [number, number][] {
  const dv = new DataView(img.buffer, img.byteOffset);
  const bs = dv.getUint32(base + 1024 + 40);
  const ranges: [number, number][] = [[base + 1024, base + 1536]];
  for (const fork of [192, 272, 352]) {
    const o = base + 1024 + fork;
    const start = dv.getUint32(o + 16) * bs;
    const len = dv.getUint32(o + 20) * bs;
    if (len > 0) ranges.push([base + start, base + start + Math.min(len, 64 << 10)]);
  }
  return ranges;
}

/**
 * APFS objects are checksummed, so plain mutations stop at the first checksum. Here each
 * iteration corrupts bytes inside one valid object block and re-seals its checksum, so the
 * structure parsers behind the checksum are exercised too.
 */
function fuzzApfs(img: Uint8Array, base: number, iterations: number, seed: number): { formatErrors: number; ok: number } {
  const objects: number[] = [];
  for (let off = base; off + 4096 <= img.length; off += 4096) {
    const blk = img.subarray(off, off + 4096);
    if (blk.some((b) => b !== 0) && objectChecksumOk(blk)) objects.push(off);
  }
  const r = rng(seed);
  let formatErrors = 0;
  let ok = 0;
  for (let i = 0; i < iterations; i++) {
    const off = objects[r() % objects.length]!;
    const blk = img.subarray(off, off + 4096);
    const saved = new Uint8Array(blk);
    const count = 1 + (r() % 6);
    for (let k = 0; k < count; k++) {
      // Mostly the header and the first records, where the structure lives.
      const pos = 8 + (r() % 4 === 0 ? r() % 4088 : r() % 248);
      blk[pos] = r() % 3 === 0 ? 0xff : r() & 0xff;
    }
    if (r() % 8 !== 0) sealObject(blk);
    try {
      exercise(img);
      ok++;
    } catch (e) {
      if (!(e instanceof FormatError)) {
        throw new Error(`iteration ${i} (seed ${seed}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} ${(e as Error)?.stack?.split("\n").slice(1, 4).join(" ")}`);
      }
      formatErrors++;
    } finally {
      blk.set(saved);
    }
  }
  return { formatErrors, ok };
}

beforeAll(() => {
  work = tempDir('fuzz');
});
afterAll(() => removeDir(work));

describe('reader fuzzing: only FormatError escapes', () => {
  it('HFS+: the hdiutil-made journaled volume', () => {
    const img = new Uint8Array(execFileSync('gunzip', ['-c', path.join(corpusFs, 'hfsplus-macos-journaled-from-src.dmg.hfs.gz')], { maxBuffer: 64 << 20 }));
    const res = fuzz(img, hfsMetadataRanges(img, 0), 3000, Number(process.env.FUZZ_SEED ?? 1));
    expect(res.formatErrors + res.ok).toBe(3000);
    expect(res.formatErrors).toBeGreaterThan(0);
  });

  it('HFS+: the xorriso hybrid ISO (Apple Partition Map)', () => {
    const img = new Uint8Array(readFileSync(path.join(corpusFs, 'hfsplus-xorriso-hybrid.iso')));
    const res = fuzz(img, [[0, 2048], ...hfsMetadataRanges(img, 0x10000)], 3000, Number(process.env.FUZZ_SEED ?? 2));
    expect(res.formatErrors + res.ok).toBe(3000);
    expect(res.formatErrors).toBeGreaterThan(0);
  });

  it('HFS+: one of our own images with overflow extents and attributes', () => {
    const src = path.join(work, 'src');
    makeRichTree(src, { manyFiles: 60, sparseMiB: 1, bigKiB: 200, depth: 6 });
    const out = path.join(work, 'f.hfs');
    buildImage({ fs: 'hfsplus', fromDir: src, output: out, label: 'F', fragmentBlocks: 2, env: { SOURCE_DATE_EPOCH: '0' } });
    const img = new Uint8Array(readFileSync(out));
    const res = fuzz(img, hfsMetadataRanges(img, 0), 3000, Number(process.env.FUZZ_SEED ?? 3));
    expect(res.formatErrors + res.ok).toBe(3000);
    expect(res.formatErrors).toBeGreaterThan(0);
  });

  it('APFS: the macOS-made container in its GPT disk', () => {
    const img = new Uint8Array(readFileSync(path.join(corpusFs, 'apfs-macos-gpt-2MiB.img')));
    const res = fuzzApfs(img, 20480, 2000, Number(process.env.FUZZ_SEED ?? 4));
    expect(res.formatErrors + res.ok).toBe(2000);
    expect(res.formatErrors).toBeGreaterThan(0);
  });

  it('APFS: one of our own images with fragmented files, symlinks and xattrs', () => {
    const src = path.join(work, 'asrc');
    makeRichTree(src, { manyFiles: 60, sparseMiB: 1, bigKiB: 100, depth: 6 });
    const out = path.join(work, 'f.apfs');
    buildImage({ fs: 'apfs', fromDir: src, output: out, label: 'F', fragmentBlocks: 2, env: { SOURCE_DATE_EPOCH: '0' } });
    const img = new Uint8Array(readFileSync(out));
    const res = fuzzApfs(img, 0, 2000, Number(process.env.FUZZ_SEED ?? 5));
    expect(res.formatErrors + res.ok).toBe(2000);
    expect(res.formatErrors).toBeGreaterThan(0);
  });
});
