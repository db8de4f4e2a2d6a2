import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { which } from '../../src/host/tools.js';
import {
  parseIm4p, buildIm4p, parseImg4, buildImg4, parseIm4m, buildIm4m, parseIm4r, buildIm4r,
  manifestComponents, findProperty, image4Kind, type Im4p,
} from '../../src/macho/img4.js';
import { readTlv, children, MAX_DER_DEPTH } from '../../src/macho/der.js';
import { FormatError } from '../../src/errors.js';

const read = (p: string) => new Uint8Array(readFileSync(path.join(corpus, p)));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
const openssl = which('openssl');

/** openssl's reading of a DER file: one [offset, depth, tag text, value] per element. */
function asn1parse(der: Uint8Array): { offset: number; depth: number; tag: string; value: string }[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-asn1-'));
  const f = path.join(dir, 'x.der');
  writeFileSync(f, der);
  const r = spawnSync(openssl!, ['asn1parse', '-inform', 'DER', '-in', f], { encoding: 'utf8', maxBuffer: 1 << 26 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').map((l) => {
    const m = /^\s*(\d+):d=(\d+)\s+hl=\s*\d+\s+l=\s*\d+\s+(?:prim|cons):\s*(.*?)\s*(?::(.*))?$/.exec(l)!;
    // Primitive values openssl cannot show as text come as "[HEX DUMP]:<hex>".
    return { offset: Number(m[1]), depth: Number(m[2]), tag: m[3]!.replace(/\s*\[HEX DUMP\]$/, '').trim(), value: m[4] ?? '' };
  });
}

describe('IM4P', () => {
  it('round-trips every corpus IM4P byte for byte', () => {
    for (const f of ['img4/pyimg4-IM4P', 'devicetree/DeviceTree.j274ap.im4p']) {
      const b = read(f);
      expect(image4Kind(b)).toBe('IM4P');
      expect(same(buildIm4p(parseIm4p(b)), b)).toBe(true);
    }
  });
  it('reads the Apple device tree IM4P as openssl does', () => {
    const b = read('devicetree/DeviceTree.j274ap.im4p');
    const p = parseIm4p(b);
    expect(p.fourcc).toBe('dtre');
    expect(p.description).toBe('EmbeddedDeviceTrees-6331.140.5');
    expect(p.compression).toEqual({ algorithm: 1n, uncompressedSize: 285164n });
    // Zero-copy: the payload is a view into the input at 0x34.
    expect(p.payload.buffer).toBe(b.buffer);
    expect(p.payload.byteOffset - b.byteOffset).toBe(0x34);
    expect(same(p.payload, read('devicetree/DeviceTree.j274ap.dtre.lzfse'))).toBe(true);
  });
  it.skipIf(!openssl)('builds keybags, compression and PAYP properties that openssl reads back', () => {
    const im4p: Im4p = {
      fourcc: 'krnl',
      description: 'test kernel',
      payload: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff),
      keybags: [
        { type: 1n, iv: new Uint8Array(16).fill(0x11), key: new Uint8Array(32).fill(0x22) },
        { type: 2n, iv: new Uint8Array(16).fill(0x33), key: new Uint8Array(32).fill(0x44) },
      ],
      compression: { algorithm: 1n, uncompressedSize: 0x12345678n },
      properties: [{ name: 'mmap', value: { type: 'int', value: 0x800000000n } }, { name: 'flag', value: { type: 'bool', value: true } }],
    };
    const der = buildIm4p(im4p);
    expect(parseIm4p(der)).toEqual(im4p);
    const items = asn1parse(der);
    const strings = items.filter((i) => i.tag === 'IA5STRING').map((i) => i.value);
    expect(strings).toEqual(['IM4P', 'krnl', 'test kernel', 'PAYP', 'mmap', 'flag']);
    const ints = items.filter((i) => i.tag === 'INTEGER').map((i) => i.value);
    expect(ints).toEqual(['01', '12345678', '0800000000']);
    // The keybag OCTET STRING holds DER of its own.
    const kb = items.filter((i) => i.tag === 'OCTET STRING' && i.depth === 1)[1]!;
    const inner = asn1parse(Buffer.from(kb.value, 'hex'));
    expect(inner.filter((i) => i.tag === 'INTEGER').map((i) => i.value)).toEqual(['01', '02']);
    expect(items.some((i) => i.tag === 'cont [ 0 ]')).toBe(true);
    expect(items.some((i) => i.tag === 'BOOLEAN')).toBe(true);
  });
});

describe('IM4M, IM4R, IMG4', () => {
  it('round-trips the Apple-signed IM4M and lists its components', () => {
    const b = read('img4/pyimg4-IM4M');
    const m = parseIm4m(b);
    expect(same(buildIm4m(m), b)).toBe(true);
    expect(m.version).toBe(0n);
    const comps = manifestComponents(m).map((c) => c.fourcc);
    expect(comps).toContain('krnl');
    expect(comps).toContain('dtre');
    const krnl = manifestComponents(m).find((c) => c.fourcc === 'krnl')!;
    const dgst = findProperty(krnl.properties, 'DGST');
    expect(dgst?.value.type).toBe('data');
    const manp = findProperty(m.body, 'MANP');
    expect(manp?.value.type).toBe('dict');
  });
  it.skipIf(!openssl)('IM4M manifest digests agree with openssl', () => {
    const b = read('img4/pyimg4-IM4M');
    const items = asn1parse(b);
    // Every component's DGST value, in file order, as openssl prints it.
    const fromOpenssl: string[] = [];
    items.forEach((it, i) => { if (it.value === 'DGST') fromOpenssl.push(items[i + 1]!.value); });
    const ours = manifestComponents(parseIm4m(b)).flatMap((c) => {
      const d = findProperty(c.properties, 'DGST');
      return d && d.value.type === 'data' ? [Buffer.from(d.value.value).toString('hex').toUpperCase()] : [];
    });
    expect(ours).toEqual(fromOpenssl);
    expect(ours.length).toBeGreaterThan(10);
  });
  it('round-trips the IM4R and reads its BNCN nonce', () => {
    const b = read('img4/pyimg4-IM4R');
    const r = parseIm4r(b);
    expect(same(buildIm4r(r), b)).toBe(true);
    const bncn = findProperty(r.properties, 'BNCN')!;
    expect(bncn.value).toEqual({ type: 'data', value: b.subarray(b.length - 8) });
  });
  it('round-trips the IMG4 and finds the same IM4P and IM4M inside', () => {
    const b = read('img4/pyimg4-IMG4');
    const g = parseImg4(b);
    expect(same(buildImg4(g), b)).toBe(true);
    expect(g.im4p.fourcc).toBe('test');
    expect(same(g.im4p.payload, read('img4/pyimg4-test_payload'))).toBe(true);
    expect(same(buildIm4m(g.im4m!), read('img4/pyimg4-IM4M'))).toBe(true);
    expect(g.im4r).toBeUndefined();
  });
  it.skipIf(!openssl)('adds an IM4R as [1], which openssl and our parser read back', () => {
    const g = parseImg4(read('img4/pyimg4-IMG4'));
    const im4r = read('img4/pyimg4-IM4R');
    const built = buildImg4({ ...g, im4r: parseIm4r(im4r) });
    const back = parseImg4(built);
    expect(same(buildIm4r(back.im4r!), im4r)).toBe(true);
    const top = asn1parse(built).filter((i) => i.depth === 1).map((i) => i.tag);
    expect(top).toEqual(['IA5STRING', 'SEQUENCE', 'cont [ 0 ]', 'cont [ 1 ]']);
  });
});

describe('DER bounds', () => {
  const fails = (b: number[], re: RegExp) => expect(() => parseIm4p(Uint8Array.from(b))).toThrow(re);
  it('rejects lengths past the buffer, indefinite lengths, absurd length sizes', () => {
    fails([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x16, 0x04], /runs past the end/);
    fails([0x30, 0x80, 0x16, 0x04, 0x49, 0x4d, 0x34, 0x50, 0, 0], /indefinite/);
    fails([0x30, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1], /beyond any file/);
    fails([0x30, 0x08, 0x16, 0x04, 0x49, 0x4d, 0x34, 0x50, 0x16, 0x09], /runs past the end/);
  });
  it('stops nesting at its depth limit', () => {
    // A SET nested deeper than the limit (long-form lengths, so it can exceed 127 bytes).
    let deep: number[] = [0x05, 0x00];
    for (let i = 0; i < MAX_DER_DEPTH + 5; i++) deep = [0x31, 0x82, deep.length >> 8, deep.length & 0xff, ...deep];
    const walk = (n: ReturnType<typeof readTlv>, d: number): void => { for (const c of children(n, d)) if (c.constructed) walk(c, d + 1); };
    expect(() => walk(readTlv(Uint8Array.from(deep), 0), 0)).toThrow(FormatError);
  });
});
