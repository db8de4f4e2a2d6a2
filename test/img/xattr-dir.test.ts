import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/img/io-build.js';
import { which } from '../../src/host/tools.js';
import { xattrReader } from '../../src/host/xattr.js';
import { runCli } from '../helpers/cli.js';
import { apfsck, istat, tskApfsArgs, icat } from './oracles.js';
import { removeDir, tempDir } from './trees.js';

// Ramdisks built from a directory carry the source's extended attributes: setfattr (Debian's attr
// package, the kernel's own interface) puts them on the files, Sleuth Kit's istat/icat read them
// back out of our HFS+ and APFS images. user.* attributes arrive under their macOS names (the
// "user." prefix dropped); other namespaces are left out with a warning.

const env = { SOURCE_DATE_EPOCH: '1700000000' };
const setfattr = which('setfattr');
const canRead = xattrReader() !== null;
const work = tempDir('m1prep-xattr-');
afterAll(() => removeDir(work));

/** A tree whose file carries two user.* attributes (one binary), if the file system allows it. */
function tree(): string | null {
  const root = path.join(work, `src-${Math.random().toString(16).slice(2)}`);
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  const f = path.join(root, 'etc/motd');
  writeFileSync(f, 'hi\n');
  const a = spawnSync(setfattr!, ['-n', 'user.com.apple.note', '-v', 'hello attr', f], { encoding: 'utf8' });
  if (a.status !== 0) return null; // a file system without user attributes (tmpfs without user_xattr)
  spawnSync(setfattr!, ['-n', 'user.bin', '-v', '0x000102ff', f]);
  return root;
}

describe.skipIf(!setfattr || !canRead || !which('istat'))('extended attributes from a source directory (setfattr in, Sleuth Kit out)', () => {
  it('HFS+: user.* attributes stored under their macOS names, values byte for byte', (ctx) => {
    const src = tree();
    if (!src) return ctx.skip();
    const out = path.join(work, 'x.hfs');
    buildImage({ fs: 'hfsplus', fromDir: src, output: out, env });
    const id = /(\d+)/.exec(spawnSync(which('ifind')!, ['-n', 'etc/motd', out], { encoding: 'utf8' }).stdout)![1]!;
    const st = istat(out, id);
    const attrs = [...st.matchAll(/Type: ExATTR \((\d+-\d+)\)\s+Name: (\S+)\s+Resident\s+size: (\d+)/g)];
    expect(attrs.map((a) => [a[2], Number(a[3])])).toEqual([['bin', 4], ['com.apple.note', 10]]);
    expect([...icat(out, `${id}-${attrs[0]![1]}`)]).toEqual([0, 1, 2, 0xff]);
    expect(icat(out, `${id}-${attrs[1]![1]}`).toString()).toBe('hello attr');
  });

  it('APFS: the same attributes, and apfsck accepts the image', (ctx) => {
    const src = tree();
    if (!src) return ctx.skip();
    const out = path.join(work, 'x.apfs');
    buildImage({ fs: 'apfs', fromDir: src, output: out, size: 128n << 20n, env });
    const args = tskApfsArgs(out);
    const id = /(\d+)/.exec(spawnSync(which('ifind')!, [...args, '-n', 'etc/motd', out], { encoding: 'utf8' }).stdout)![1]!;
    const st = istat(out, id, args);
    expect(st).toMatch(/com\.apple\.note/);
    expect(st).toMatch(/\bbin\b/);
    if (which('apfsck')) expect(apfsck(out).code).toBe(0);
  });

  it('--no-xattrs leaves them out; the CLI build carries them by default', (ctx) => {
    const src = tree();
    if (!src) return ctx.skip();
    const withA = path.join(work, 'with.hfs'), without = path.join(work, 'without.hfs');
    expect(runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', withA], { env }).code).toBe(0);
    expect(runCli(['ramdisk', 'build', '--fs', 'hfsplus', '--from', src, '-o', without, '--no-xattrs'], { env }).code).toBe(0);
    const idOf = (img: string) => /(\d+)/.exec(spawnSync(which('ifind')!, ['-n', 'etc/motd', img], { encoding: 'utf8' }).stdout)![1]!;
    expect(istat(withA, idOf(withA))).toMatch(/Name: com\.apple\.note/);
    expect(istat(without, idOf(without))).not.toMatch(/ExATTR/);
  });
});
