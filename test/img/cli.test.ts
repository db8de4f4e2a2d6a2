import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir, removeDir, bytes } from './trees.js';

// `m1prep ramdisk build|ls|cat` as a user runs them (the compiled CLI).

let work: string;
let src: string;

beforeAll(() => {
  work = tempDir('cli');
  src = path.join(work, 'src');
  mkdirSync(path.join(src, 'etc'), { recursive: true });
  writeFileSync(path.join(src, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(path.join(src, 'blob.bin'), bytes(300_000, 9));
});
afterAll(() => removeDir(work));

const env = { SOURCE_DATE_EPOCH: '1600000000' };

describe('m1prep ramdisk (HFS+)', () => {
  it('builds, lists (text, long, JSON) and cats', () => {
    const img = path.join(work, 'a.hfs');
    const b = runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', img, '--label', 'CLI'], { env });
    expect(b.code, b.stderr).toBe(0);
    const ls = runCli(['ramdisk', 'ls', img]);
    expect(ls.stdout.split('\n').filter(Boolean)).toEqual(['blob.bin', 'etc']);
    const long = runCli(['ramdisk', 'ls', img, '/etc', '-l']);
    expect(long.stdout).toMatch(/^-rw-r--r--\s+\d+\s+\d+\s+20\s+2020-09-13T12:26:40Z\s+hosts$/m);
    const js = JSON.parse(runCli(['ramdisk', 'ls', img, '-R', '--json']).stdout) as { path: string; size: string; mode: string }[];
    expect(js.map((e) => e.path)).toEqual(['/blob.bin', '/etc', '/etc/hosts']);
    expect(js[0]!.size).toBe('0x493e0');
    expect(js[1]!.mode).toBe('040755');
    const cat = runCli(['ramdisk', 'cat', img, '/etc/hosts']);
    expect(cat.stdout).toBe('127.0.0.1 localhost\n');
  });

  it('fails with one line and exit 1 on bad input, and leaves no output behind', () => {
    const out = path.join(work, 'out');
    mkdirSync(out);
    const small = runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', path.join(out, 'x.hfs'), '--size', '64K'], { env });
    expect(small.code).toBe(1);
    expect(small.stderr.trim().split('\n')).toHaveLength(1);
    expect(small.stderr).toMatch(/image too small/);
    expect(readdirSync(out)).toEqual([]);
    const notImage = runCli(['ramdisk', 'ls', path.join(src, 'blob.bin')]);
    expect(notImage.code).toBe(1);
    expect(notImage.stderr).toMatch(/blob\.bin: offset 0x0: image: no HFS\+, HFSX or APFS volume/);
    const missing = runCli(['ramdisk', 'cat', path.join(work, 'a.hfs'), '/nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/nope: no such file or directory in the image/);
    const badSize = runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', path.join(out, 'y'), '--size', 'lots']);
    expect(badSize.code).toBe(2);
  });

  it('accepts a YAML manifest and rejects an invalid one with the field named', () => {
    const m = path.join(work, 'm.yaml');
    writeFileSync(m, `label: MAN\nentries:\n  - path: /bin/sh\n    type: symlink\n    target: /bin/bash\n  - path: /data\n    type: file\n    source: src/blob.bin\n    mode: "0755"\n`);
    const img = path.join(work, 'm.hfs');
    expect(runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', m, '-o', img], { env }).code).toBe(0);
    const ls = runCli(['ramdisk', 'ls', img, '-R', '-l']);
    expect(ls.stdout).toMatch(/^lrwxr-xr-x .* \/bin\/sh -> \/bin\/bash$/m);
    expect(ls.stdout).toMatch(/^-rwxr-xr-x\s+0\s+0\s+300000\s/m);
    expect(Buffer.from(runCli(['ramdisk', 'cat', img, '/data']).stdout, 'latin1').length).toBeGreaterThan(0);
    expect(readFileSync(img).subarray(1024, 1026).toString()).toBe('H+');
    writeFileSync(m, `entries:\n  - path: /x\n    type: fifo\n`);
    const bad = runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', m, '-o', img]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/entries\/0\/type/);
  });
});

describe('m1prep ramdisk (APFS)', () => {
  it('builds with a role, lists and cats; a several-GiB container costs only its metadata', () => {
    const img = path.join(work, 'a.apfs');
    const b = runCli(['ramdisk', 'build', '--fs', 'apfs', '--from', src, '-o', img, '--label', 'Boot', '--role', 'system', '--size', '6G', '--json'], { env });
    expect(b.code, b.stderr).toBe(0);
    const info = JSON.parse(b.stdout) as { size: string; fs: string };
    expect(info.size).toBe('0x180000000');
    const ls = runCli(['ramdisk', 'ls', img, '-R']);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual(['/blob.bin', '/etc', '/etc/hosts']);
    expect(statSync(img).blocks * 512).toBeLessThan(16 << 20); // free space stays a hole
    expect(runCli(['ramdisk', 'cat', img, '/ETC/HOSTS']).stdout).toBe('127.0.0.1 localhost\n');
    const hfsRole = runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', path.join(work, 'r.hfs'), '--role', 'system']);
    expect(hfsRole.code).toBe(2);
  });
});
