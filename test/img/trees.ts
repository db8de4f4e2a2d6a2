import { mkdirSync, writeFileSync, symlinkSync, openSync, writeSync, closeSync, ftruncateSync, mkdtempSync, rmSync, readdirSync, lstatSync, readlinkSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

// Source trees for the image tests, made under a temporary directory, and a description of
// what a reader should find in an image built from them.

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `m1prep-img-${tag}-`));
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
}

/** Deterministic bytes: a counter stream seeded by `seed`. */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export interface TreeShape {
  manyFiles?: number;
  depth?: number;
  sparseMiB?: number;
  bigKiB?: number;
}

/** The rich tree: nesting, many files, NFC Unicode names, sparse/large files, symlinks, empties. */
export function makeRichTree(root: string, shape: TreeShape = {}): void {
  const many = shape.manyFiles ?? 1500;
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'hello.txt'), 'hello world\n');
  writeFileSync(path.join(root, 'empty'), '');
  mkdirSync(path.join(root, 'emptydir'));
  let deep = root;
  for (let i = 0; i < (shape.depth ?? 40); i++) deep = path.join(deep, `d${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(path.join(deep, 'bottom.txt'), 'at the bottom\n');
  const m = path.join(root, 'many');
  mkdirSync(m);
  for (let i = 0; i < many; i++) writeFileSync(path.join(m, `file-${String(i).padStart(5, '0')}.txt`), `file number ${i}\n`);
  const u = path.join(root, 'unicode');
  mkdirSync(u);
  for (const n of ['café.txt'.normalize('NFC'), 'Ångström'.normalize('NFC'), '한글.txt'.normalize('NFC'), 'emoji-😀.txt', 'Zürich'.normalize('NFC'), 'ﬁ-ligature']) {
    writeFileSync(path.join(u, n), `name ${n}\n`);
  }
  const big = path.join(root, 'big.bin');
  writeFileSync(big, bytes((shape.bigKiB ?? 700) * 1024 + 123, 7));
  // A sparse file: data at the start, the middle and the end, holes between.
  const sparse = path.join(root, 'sparse.img');
  const fd = openSync(sparse, 'w');
  const sz = (shape.sparseMiB ?? 24) * 1024 * 1024;
  ftruncateSync(fd, sz);
  writeSync(fd, bytes(5000, 1), 0, 5000, 0);
  writeSync(fd, bytes(5000, 2), 0, 5000, Math.floor(sz / 2) + 17);
  writeSync(fd, bytes(100, 3), 0, 100, sz - 100);
  closeSync(fd);
  symlinkSync('hello.txt', path.join(root, 'link-rel'));
  symlinkSync('/etc/passwd', path.join(root, 'link-abs-out-of-tree'));
  symlinkSync('../../nowhere', path.join(root, 'unicode', 'link-dangling'));
  spawnSync('chmod', ['0750', path.join(root, 'emptydir')]);
  spawnSync('chmod', ['4755', path.join(root, 'hello.txt')]);
}

export interface Expected {
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  sha256?: string;
  target?: string;
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** What the source directory holds, by NFC path (images store names decomposed). */
export function describeDir(root: string): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const walk = (abs: string, rel: string) => {
    for (const n of readdirSync(abs).sort()) {
      const a = path.join(abs, n);
      const r = `${rel}/${n}`.normalize('NFC');
      const st = lstatSync(a);
      if (st.isSymbolicLink()) {
        const target = readlinkSync(a);
        out.set(r, { path: r, kind: 'symlink', mode: st.mode, size: Buffer.byteLength(target), target });
      } else if (st.isDirectory()) {
        out.set(r, { path: r, kind: 'dir', mode: st.mode, size: 0 });
        walk(a, r);
      } else {
        out.set(r, { path: r, kind: 'file', mode: st.mode, size: st.size, sha256: sha(readFileSync(a)) });
      }
    }
  };
  walk(root, '');
  return out;
}
