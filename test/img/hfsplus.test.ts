import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, readdirSync, lstatSync, readlinkSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { buildImage } from '../../src/img/io-build.js';
import { openFileSource } from '../../src/img/io-read.js';
import { openVolume } from '../../src/img/open.js';
import { bytesSource } from '../../src/img/source.js';
import { ImageInputError } from '../../src/img/input-error.js';
import { tool } from '../../src/host/tools.js';
import type { FsEntry } from '../../src/img/entry.js';
import { makeRichTree, describeDir, tempDir, removeDir, sha, type Expected } from './trees.js';
import { sevenZipList, sevenZipExtract, flsList, icat, istat, modeText } from './oracles.js';

const env = { SOURCE_DATE_EPOCH: '1700000000' };
let work: string;
let src: string;
let expected: Map<string, Expected>;
let image: string;
let hfsx: string;
let image7: string;

function readAll(vol: ReturnType<typeof openVolume>, p: string): Buffer {
  return Buffer.concat([...vol.read(p)]);
}

beforeAll(() => {
  work = tempDir('hfs');
  src = path.join(work, 'src');
  makeRichTree(src);
  expected = describeDir(src);
  image = path.join(work, 'rich.hfs');
  // Fragmented: every file's data in 3-block extents, so big.bin needs the extents-overflow tree.
  buildImage({ fs: 'hfsplus', fromDir: src, output: image, label: 'Rich', fragmentBlocks: 3, env });
  // 7-Zip (seen with 26.02) loses track of a file whose extents-overflow records continue into the
  // next leaf node (it restarts its block count per node), so its image keeps each file's
  // overflow records within one node: 16-block extents give the sparse file 47 records.
  image7 = path.join(work, 'rich7.hfs');
  buildImage({ fs: 'hfsplus', fromDir: src, output: image7, label: 'Rich7', fragmentBlocks: 16, env });
  hfsx = path.join(work, 'rich.hfsx');
  buildImage({ fs: 'hfsplus', fromDir: src, output: hfsx, label: 'RichX', caseSensitive: true, env });
});

afterAll(() => removeDir(work));

describe('HFS+ writer, read back by our reader', () => {
  it('holds every entry with its kind, mode, size, contents and link target', () => {
    for (const img of [image, hfsx]) {
      const vol = openVolume(openFileSource(img));
      const seen = new Map<string, FsEntry>();
      for (const e of vol.walk()) seen.set(e.path.normalize('NFC'), e);
      expect([...seen.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [p, x] of expected) {
        const e = seen.get(p)!;
        expect(e.kind, p).toBe(x.kind);
        expect(e.mode, p).toBe(x.mode);
        expect(Number(e.size), p).toBe(x.size);
        expect(e.mtimeNs).toBe(1700000000n * 1_000_000_000n);
        if (x.kind === 'file') expect(sha(readAll(vol, e.path)), p).toBe(x.sha256);
        if (x.kind === 'symlink') expect(e.target).toBe(x.target);
      }
      expect(vol.format).toBe(img === hfsx ? 'hfsx' : 'hfsplus');
    }
  });

  it('stores names in HFS+ decomposed form (NFC input é becomes e + U+0301)', () => {
    const vol = openVolume(openFileSource(image));
    const names = vol.list('/unicode').map((e) => e.name);
    expect(names).toContain('cafe\u0301.txt');
    expect(names).toContain('\u1112\u1161\u11ab\u1100\u1173\u11af.txt'); // Hangul as conjoining jamo
    expect(names).toContain('emoji-😀.txt');
    // U+FB01 lies in no excluded range but has no canonical decomposition: kept.
    expect(names).toContain('ﬁ-ligature');
    // Lookups accept NFC and any case on a case-insensitive volume.
    expect(vol.stat('/UNICODE/CAFÉ.TXT').name).toBe('cafe\u0301.txt');
  });

  it('orders the catalog with FastUnicodeCompare (case-insensitive) or binary (HFSX)', () => {
    const ci = openVolume(openFileSource(image)).list('/').map((e) => e.name);
    expect(ci.indexOf('big.bin')).toBeLessThan(ci.indexOf('d0'));
    const cs = openVolume(openFileSource(hfsx)).list('/unicode').map((e) => e.name);
    expect(cs.indexOf('Zu\u0308rich')).toBeLessThan(cs.indexOf('cafe\u0301.txt')); // 'Z' < 'c' in binary order
    const ci2 = openVolume(openFileSource(image)).list('/unicode').map((e) => e.name);
    expect(ci2.indexOf('cafe\u0301.txt')).toBeLessThan(ci2.indexOf('Zu\u0308rich'));
  });

  it('writes the header, alternate header and signature as TN1150 lays them out', () => {
    const b = readFileSync(image);
    expect(b.subarray(1024, 1026).toString('latin1')).toBe('H+');
    expect(b.subarray(b.length - 1024, b.length - 512)).toEqual(b.subarray(1024, 1536));
    const x = readFileSync(hfsx);
    expect(x.subarray(1024, 1026).toString('latin1')).toBe('HX');
    expect(x.readUInt16BE(1026)).toBe(5);
  });
});

describe.skipIf(!tool('7zz'))('HFS+ images read by 7-Zip (7zz)', () => {
  it('lists every entry with its size and mode, and extracts identical contents', () => {
    for (const img of [image7, hfsx]) {
      const items = sevenZipList(img, true);
      const byPath = new Map(items.map((i) => [i.path, i]));
      expect([...byPath.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [p, x] of expected) {
        const it7 = byPath.get(p)!;
        expect(it7.folder, p).toBe(x.kind === 'dir');
        if (x.kind !== 'dir') expect(it7.size, p).toBe(x.size);
        expect(it7.mode, p).toBe(modeText(x.mode));
      }
      const out = path.join(work, `x7-${path.basename(img)}`);
      sevenZipExtract(img, out);
      const top = path.join(out, readdirSync(out)[0]!);
      for (const [p, x] of expected) {
        const onDisk = path.join(top, ...p.split('/').filter(Boolean).map((s) => s.normalize('NFD')));
        const alt = path.join(top, ...p.split('/').filter(Boolean));
        const f = existsSync(onDisk) || lstatSync(onDisk, { throwIfNoEntry: false }) ? onDisk : alt;
        if (x.kind === 'file') expect(sha(readFileSync(f)), p).toBe(x.sha256);
        if (x.kind === 'symlink') {
          const st = lstatSync(f);
          const got = st.isSymbolicLink() ? readlinkSync(f) : readFileSync(f, 'utf8');
          // 7-Zip re-roots absolute link targets under the extraction directory.
          if (x.target!.startsWith('/')) expect(got.endsWith(x.target!), p).toBe(true);
          else expect(got, p).toBe(x.target);
        }
      }
    }
  });
});

describe.skipIf(!tool('fls'))('HFS+ images read by Sleuth Kit (fls, icat, istat)', () => {
  it('fls lists every path; icat returns identical contents; istat reports modes', () => {
    for (const img of [image, hfsx]) {
      const items = flsList(img);
      const byPath = new Map(items.map((i) => [i.path, i]));
      expect([...byPath.keys()].sort()).toEqual([...expected.keys()].sort());
      let sampled = 0;
      for (const [p, x] of expected) {
        const f = byPath.get(p)!;
        expect(f.type[0], p).toBe(x.kind === 'dir' ? 'd' : x.kind === 'symlink' ? 'l' : 'r');
        // Every file outside the big directory, and every 100th inside it.
        if (x.kind === 'file' && (!p.startsWith('/many/') || sampled++ % 100 === 0)) {
          expect(sha(icat(img, f.inode)), p).toBe(x.sha256);
        }
        if (!p.startsWith('/many/') && !p.includes('/d1/')) {
          const mode = /Mode:\s+(\S+)/.exec(istat(img, f.inode))![1]!;
          expect(mode.slice(1), p).toBe(modeText(x.mode).slice(1));
        }
      }
    }
  });
});

describe('HFS+ build options and errors', () => {
  it('is deterministic: the same input gives the same bytes', () => {
    const a = path.join(work, 'det-a.hfs');
    const b = path.join(work, 'det-b.hfs');
    buildImage({ fs: 'hfsplus', fromDir: path.join(src, 'unicode'), output: a, label: 'D', env });
    buildImage({ fs: 'hfsplus', fromDir: path.join(src, 'unicode'), output: b, label: 'D', env });
    expect(sha(readFileSync(a))).toBe(sha(readFileSync(b)));
  });

  it('refuses an image too small, naming both sizes, and leaves nothing behind', () => {
    const out = path.join(work, 'small', 'x.hfs');
    mkdirSync(path.dirname(out));
    expect(() => buildImage({ fs: 'hfsplus', fromDir: src, output: out, size: 1n << 20n, label: 'S', env })).toThrow(/image too small: the tree needs \d+ bytes .* --size gives 1048576/);
    expect(readdirSync(path.dirname(out))).toEqual([]);
  });

  it('refuses names that differ only in case on a case-insensitive volume, accepts them on HFSX', () => {
    const d = path.join(work, 'case');
    mkdirSync(d);
    writeFileSync(path.join(d, 'Readme'), 'a');
    writeFileSync(path.join(d, 'README'), 'b');
    expect(() => buildImage({ fs: 'hfsplus', fromDir: d, output: path.join(work, 'case.hfs'), label: 'C', env })).toThrow(ImageInputError);
    buildImage({ fs: 'hfsplus', fromDir: d, output: path.join(work, 'case.hfsx'), label: 'C', caseSensitive: true, env });
    const vol = openVolume(openFileSource(path.join(work, 'case.hfsx')));
    expect(vol.list('/').map((e) => e.name)).toEqual(['README', 'Readme']);
  });

  it('refuses FIFOs unless asked to skip them, and over-long names', () => {
    const d = path.join(work, 'special');
    mkdirSync(d);
    execFileSync('mkfifo', [path.join(d, 'pipe')]);
    writeFileSync(path.join(d, 'ok'), 'ok');
    expect(() => buildImage({ fs: 'hfsplus', fromDir: d, output: path.join(work, 'sp.hfs'), label: 'S', env })).toThrow(/pipe: is a FIFO/);
    const skipped: string[] = [];
    buildImage({ fs: 'hfsplus', fromDir: d, output: path.join(work, 'sp.hfs'), label: 'S', env, skipSpecial: true, onSkip: (p) => skipped.push(p) });
    expect(skipped).toEqual(['/pipe']);
    // 128 × 'é' is 128 UTF-16 units as NFC but 256 once decomposed: too long for HFS+ (and too
    // long for Linux as a file name, hence a manifest).
    const long = path.join(work, 'long.yaml');
    writeFileSync(long, `entries:\n  - path: /${'é'.repeat(128)}\n    type: file\n    content: x\n`);
    expect(() => buildImage({ fs: 'hfsplus', fromDir: long, output: path.join(work, 'l.hfs'), label: 'L', env })).toThrow(/256 UTF-16 units after decomposition/);
  });

  it('stores extended attributes from a manifest (read back by Sleuth Kit)', () => {
    const m = path.join(work, 'xattr.yaml');
    writeFileSync(m, [
      'label: XA', 'entries:', '  - path: /etc/motd', '    type: file', '    content: "hi\\n"', '    mode: "0600"', '    uid: 501', '    gid: 20',
      '    xattrs:', '      com.example.note: "hello attr"', '      user.bin: { base64: "AAEC" }',
    ].join('\n'));
    const out = path.join(work, 'xattr.hfs');
    buildImage({ fs: 'hfsplus', fromDir: m, output: out, env });
    const vol = openVolume(openFileSource(out));
    const e = vol.stat('/etc/motd');
    expect([e.mode, e.uid, e.gid, e.size]).toEqual([0o100600, 501, 20, 3n]);
    expect(vol.label).toBe('XA');
    if (tool('fls')) {
      const st = istat(out, String(e.id));
      const attrs = [...st.matchAll(/Type: ExATTR \((\d+-\d+)\)\s+Name: (\S+)\s+Resident\s+size: (\d+)/g)];
      expect(attrs.map((a) => [a[2], Number(a[3])])).toEqual([['com.example.note', 10], ['user.bin', 3]]);
      expect(icat(out, `${e.id}-${attrs[0]![1]}`).toString()).toBe('hello attr');
    }
  });
});

describe('HFS+ reader on images nobody here wrote', () => {
  const corpusFs = path.resolve(__dirname, '../../../shared/corpus/fs');

  it('reads the hdiutil-made journaled HFS+ volume like fls does', () => {
    const raw = execFileSync('gunzip', ['-c', path.join(corpusFs, 'hfsplus-macos-journaled-from-src.dmg.hfs.gz')], { maxBuffer: 64 << 20 });
    const vol = openVolume(bytesSource(raw));
    expect(vol.label).toBe('src');
    const ours = [...vol.walk()].map((e) => e.path).filter((p) => !p.includes('HFS+ Private'));
    const f = path.join(work, 'journaled.hfs');
    writeFileSync(f, raw);
    if (tool('fls')) expect(ours.sort()).toEqual(flsList(f).map((x) => x.path).sort());
    expect(readAll(vol, '/Hello').toString()).toBe(icat(f, String(vol.stat('/Hello').id)).toString());
    expect(vol.stat('/Hello').size).toBe(6n);
  });

  it('reads the xorriso hybrid ISO through its Apple Partition Map', () => {
    const iso = path.join(corpusFs, 'hfsplus-xorriso-hybrid.iso');
    const vol = openVolume(openFileSource(iso));
    expect(vol.label).toBe('HFSPTEST');
    const ours = [...vol.walk()].map((e) => e.path).sort();
    expect(ours).toEqual(['/dir1', '/dir1/nested.txt', '/gpl.txt', '/hello.txt']);
    if (tool('fls')) expect(ours).toEqual(flsList(iso, ['-o', '128']).map((x) => x.path).sort());
    expect(readAll(vol, '/gpl.txt')).toEqual(readFileSync(path.resolve(corpusFs, '../lzfse/gpl3.txt')));
    expect(readAll(vol, '/dir1/nested.txt').toString()).toBe('hello from linux\n');
  });

  it('rejects classic HFS with a FormatError naming the signature', () => {
    const raw = execFileSync('gunzip', ['-c', path.join(corpusFs, 'hfs-classic-r2.img.gz')]);
    expect(() => openVolume(bytesSource(raw))).toThrow(/classic HFS \(signature 'BD'\)/);
    expect(() => openVolume(bytesSource(readFileSync(path.join(corpusFs, 'hfs-classic-fuzzed-oobread.img'))))).toThrow(/classic HFS/);
    void statSync;
  });
});
