import { describe, it, expect } from 'vitest';
import { readFileSync, mkdtempSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { corpus, runCli } from '../helpers/cli.js';
import { openContainer, packIm4p } from '../../src/macho/container.js';
import { buildIm4p, parseIm4p, buildImg4, parseImg4 } from '../../src/macho/img4.js';
import { buildComplzss, parseComplzss } from '../../src/macho/complzss.js';
import { lzfseScan } from '../../src/macho/lzfse-decode.js';
import { FormatError } from '../../src/errors.js';

const read = (p: string) => new Uint8Array(readFileSync(path.join(corpus, p)));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const dtre = read('devicetree/DeviceTree.j274ap.dtre');

describe('openContainer', () => {
  it('peels the Apple device tree IM4P down to the ADT, and repacks it the same way', () => {
    const c = openContainer(read('devicetree/DeviceTree.j274ap.im4p'));
    expect(c.layers).toEqual(['im4p:dtre', 'lzfse']);
    expect(c.fourcc).toBe('dtre');
    expect(c.description).toBe('EmbeddedDeviceTrees-6331.140.5');
    expect(c.compression).toBe('lzfse');
    expect(same(c.payload, dtre)).toBe(true);
    const changed = dtre.slice();
    changed[100] ^= 0xff;
    const again = openContainer(c.repack(changed));
    expect(again.layers).toEqual(c.layers);
    expect(again.description).toBe(c.description);
    expect(same(again.payload, changed)).toBe(true);
    expect(again.im4p!.compression).toEqual({ algorithm: 1n, uncompressedSize: BigInt(dtre.length) });
  });
  it('opens an IMG4 and rebuilds it byte for byte when nothing changed', () => {
    const b = read('img4/pyimg4-IMG4');
    const c = openContainer(b);
    expect(c.layers).toEqual(['img4', 'im4p:test']);
    expect(c.compression).toBe('none');
    expect(same(c.payload, read('img4/pyimg4-test_payload'))).toBe(true);
    expect(same(c.repack(c.payload), b)).toBe(true);
    // Re-compressing keeps the manifest.
    const lz = openContainer(c.repack(c.payload, { compression: 'lzfse' }));
    expect(lz.layers).toEqual(['img4', 'im4p:test', 'lzfse']);
    expect(same(lz.payload, c.payload)).toBe(true);
    expect(lz.img4!.im4m).toEqual(c.img4!.im4m);
  });
  it('opens complzss (keeping trailing data on repack) and raw LZFSE streams', () => {
    const c = openContainer(read('lzss/gpl3.txt.complzss'));
    expect(c.layers).toEqual(['complzss']);
    expect(same(c.payload, read('lzfse/gpl3.txt'))).toBe(true);
    const trailing = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff);
    const withTail = openContainer(buildComplzss(dtre, { trailing }));
    const repacked = parseComplzss(withTail.repack(read('lzfse/gpl3.txt')));
    expect(same(repacked.trailing, trailing)).toBe(true);
    const z = openContainer(read('lzfse/libsqlite3.so.0.8.6.bin.lzfse'));
    expect(z.layers).toEqual(['lzfse']);
    expect(same(z.payload, read('lzfse/libsqlite3.so.0.8.6.bin'))).toBe(true);
    expect(lzfseScan(z.repack(z.payload)).decodedSize).toBe(z.payload.length);
  });
  it('treats anything else as raw, and refuses IM4M/IM4R', () => {
    const c = openContainer(read('macho/ls-m1'));
    expect(c.layers).toEqual([]);
    expect(c.compression).toBe('none');
    expect(() => openContainer(read('img4/pyimg4-IM4M'))).toThrow(FormatError);
  });
  it('packIm4p: LZFSE, LZSS and stored payloads open back to the input', () => {
    for (const compression of ['lzfse', 'lzss', 'none'] as const) {
      const b = packIm4p({ fourcc: 'krnl', description: 'k', payload: dtre, compression });
      const c = openContainer(b);
      expect(c.layers).toEqual(['im4p:krnl', ...({ lzfse: ['lzfse'], lzss: ['complzss'], none: [] })[compression]]);
      expect(same(c.payload, dtre)).toBe(true);
      expect(c.im4p!.compression !== undefined).toBe(compression === 'lzfse');
    }
  });
  it('leaves encrypted payloads alone and keeps their keybags', () => {
    const p = parseIm4p(packIm4p({ fourcc: 'krnl', description: 'k', payload: dtre, compression: 'none' }));
    p.keybags = [{ type: 1n, iv: new Uint8Array(16), key: new Uint8Array(32) }];
    const c = openContainer(buildIm4p(p));
    expect(c.encrypted).toBe(true);
    expect(c.layers).toEqual(['im4p:krnl', 'encrypted']);
    expect(parseIm4p(c.repack(c.payload)).keybags).toEqual(p.keybags);
  });
  it('rejects an IM4P whose compression SEQUENCE disagrees with its payload', () => {
    const p = parseIm4p(read('devicetree/DeviceTree.j274ap.im4p'));
    p.compression = { algorithm: 1n, uncompressedSize: 1234n };
    expect(() => openContainer(buildIm4p(p))).toThrow(/declares 1234/);
    const g = parseImg4(read('img4/pyimg4-IMG4'));
    expect(openContainer(buildImg4(g)).layers).toEqual(['img4', 'im4p:test']);
  });
});

describe('m1prep unpack / pack', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-containers-'));
  it('unpacks the Apple device tree and reports layers as JSON', () => {
    const out = path.join(dir, 'dt.bin');
    const r = runCli(['unpack', path.join(corpus, 'devicetree/DeviceTree.j274ap.im4p'), '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers).toEqual(['im4p:dtre', 'lzfse']);
    expect(j.outputSize).toBe(dtre.length);
    expect(same(new Uint8Array(readFileSync(out)), dtre)).toBe(true);
  });
  it('lists the IMG4 manifest in JSON (components and their digests)', () => {
    const r = runCli(['unpack', path.join(corpus, 'img4/pyimg4-IMG4'), '-o', path.join(dir, 'img4.bin'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.layers).toEqual(['img4', 'im4p:test']);
    expect(j.im4m.components.krnl.DGST).toMatch(/^[0-9a-f]{96}$/); // SHA-384
    expect(j.im4m.properties.ECID).toMatch(/^0x[0-9a-f]+$/);
  });
  it('packs and unpacks again (lzfse, lzss, none)', () => {
    for (const c of ['lzfse', 'lzss', 'none']) {
      const im4p = path.join(dir, `dt-${c}.im4p`);
      let r = runCli(['pack', path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre'), '--type', 'dtre', '--compress', c, '--desc', 'x', '-o', im4p]);
      expect(r.code, r.stderr).toBe(0);
      const back = path.join(dir, `dt-${c}.bin`);
      r = runCli(['unpack', im4p, '-o', back]);
      expect(r.code, r.stderr).toBe(0);
      expect(same(new Uint8Array(readFileSync(back)), dtre)).toBe(true);
    }
  });
  it('bare LZSS and LZVN streams', () => {
    const a = path.join(dir, 'a');
    expect(runCli(['unpack', path.join(corpus, 'lzss/gpl3.txt.lzss'), '--format', 'lzss', '-o', a]).code).toBe(0);
    expect(same(new Uint8Array(readFileSync(a)), read('lzfse/gpl3.txt'))).toBe(true);
    const b = path.join(dir, 'b');
    expect(runCli(['unpack', path.join(corpus, 'lzfse/gpl3.txt.lzvn'), '--format', 'lzvn', '--size', '64K', '-o', b]).code).toBe(0);
    expect(same(new Uint8Array(readFileSync(b)), read('lzfse/gpl3.txt'))).toBe(true);
    const r = runCli(['unpack', path.join(corpus, 'lzfse/gpl3.txt.lzvn'), '--format', 'lzvn', '-o', b]);
    expect(r.code).toBe(2);
    // With --size, a truncated bare LZSS stream (no end marker of its own) is an error, not a short file.
    const size = read('lzfse/gpl3.txt').length;
    const exact = path.join(dir, 'exact');
    expect(runCli(['unpack', path.join(corpus, 'lzss/gpl3.txt.lzss'), '--format', 'lzss', '--size', String(size), '-o', exact]).code).toBe(0);
    expect(same(new Uint8Array(readFileSync(exact)), read('lzfse/gpl3.txt'))).toBe(true);
    const cut = path.join(dir, 'cut.lzss');
    writeFileSync(cut, read('lzss/gpl3.txt.lzss').subarray(0, 8000));
    const t = runCli(['unpack', cut, '--format', 'lzss', '--size', String(size), '-o', path.join(dir, 'never-lzss')]);
    expect(t.code).toBe(1);
    expect(t.stderr.trim().split('\n')).toHaveLength(1);
    expect(t.stderr).toMatch(new RegExp(`cut\\.lzss: offset 0x1f40: LZSS stream: the stream ends after \\d+ bytes of output, but --size says ${size}`));
    expect(existsSync(path.join(dir, 'never-lzss'))).toBe(false);
  });
  it('bad input: exit 1, one line naming file and offset, no output written', () => {
    const bad = path.join(dir, 'trunc.im4p');
    writeFileSync(bad, read('devicetree/DeviceTree.j274ap.im4p').subarray(0, 5000));
    const out = path.join(dir, 'never');
    const r = runCli(['unpack', bad, '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/trunc\.im4p: offset 0x[0-9a-f]+: DER/);
    expect(existsSync(out)).toBe(false);
  });
});
