import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { lzfseDecode, lzfseScan, readBlockHeader } from '../../src/macho/lzfse-decode.js';
import { lzfseEncode } from '../../src/macho/lzfse-encode.js';
import { lzvnDecode } from '../../src/macho/lzvn-decode.js';
import { lzvnEncode } from '../../src/macho/lzvn-encode.js';
import { lzssDecode, lzssEncode } from '../../src/macho/lzss.js';
import { parseComplzss, decodeComplzss, buildComplzss, adler32 } from '../../src/macho/complzss.js';
import { FormatError } from '../../src/errors.js';
import { FREQ_COUNT, V1_HEADER_SIZE } from '../../src/macho/lzfse-tables.js';

// Vectors made by Apple's reference lzfse and by img4lib's LZSS (see corpus SOURCES.md): every
// stream must decode to its input, and what we encode must decode back.

const LZFSE = path.join(corpus, 'lzfse');
const LZSS = path.join(corpus, 'lzss');
const read = (p: string) => new Uint8Array(readFileSync(p));
const inputs = readdirSync(LZFSE).filter((f) => !/\.(lzfse|lzvn)$/.test(f));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

describe('LZFSE decode (reference vectors)', () => {
  for (const f of readdirSync(LZFSE).filter((f) => f.endsWith('.lzfse'))) {
    it(f, () => {
      const expected = read(path.join(LZFSE, f.replace(/(\.tightdst)?\.lzfse$/, '')));
      expect(same(lzfseDecode(read(path.join(LZFSE, f))), expected)).toBe(true);
    });
  }
  it('Apple-encoded device tree payload (3 bvx2 blocks)', () => {
    const src = read(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre.lzfse'));
    expect(lzfseScan(src).blocks.map((b) => b.kind)).toEqual(['bvx2', 'bvx2', 'bvx2']);
    expect(same(lzfseDecode(src), read(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre')))).toBe(true);
  });
  it('bvx1 blocks: the reference bvx2 streams with their headers rewritten in the v1 layout', () => {
    for (const f of ['gpl3.txt', 'libsqlite3.so.0.8.6.bin', 'zeros-1MiB.bin']) {
      const v2 = read(path.join(LZFSE, f + '.lzfse'));
      const v1 = toV1(v2);
      expect(lzfseScan(v1).blocks.every((b) => b.kind === 'bvx1')).toBe(true);
      expect(same(lzfseDecode(v1), read(path.join(LZFSE, f)))).toBe(true);
    }
  });
  it('rejects declared sizes the block cannot produce, before allocating', () => {
    const src = read(path.join(LZFSE, 'gpl3.txt.lzfse')).slice();
    new DataView(src.buffer).setUint32(4, 100_000_000, true); // n_raw_bytes of the bvx2 block
    expect(() => lzfseScan(src)).toThrow(/more than its \d+ encoded bytes can hold/);
    const raw = Uint8Array.from([...Buffer.from('bvx-'), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    expect(() => lzfseDecode(raw)).toThrow(/runs past the end of the input/);
    const lying = read(path.join(LZFSE, 'gpl3-head-3000.txt.lzfse')).slice();
    new DataView(lying.buffer).setUint32(4, 3001, true); // bvxn n_raw_bytes one too many
    expect(() => lzfseDecode(lying)).toThrow(FormatError);
    expect(() => lzfseDecode(read(path.join(LZFSE, 'gpl3.txt.lzfse')), { maxOutput: 1000 })).toThrow(/limit of 1000/);
  });
  it('mixed block types in one stream (bvx-, bvxn, bvx2, bvx1)', () => {
    const parts = [read(path.join(LZFSE, 'random-1000.bin.lzfse')), read(path.join(LZFSE, 'gpl3-head-3000.txt.lzfse')),
      read(path.join(LZFSE, 'gpl3.txt.lzfse')), toV1(read(path.join(LZFSE, 'gpl3-head-4096.txt.lzfse')))];
    const stream = Buffer.concat([...parts.map((p) => p.subarray(0, p.length - 4)), Buffer.from('bvx$')]);
    const expected = Buffer.concat(['random-1000.bin', 'gpl3-head-3000.txt', 'gpl3.txt', 'gpl3-head-4096.txt'].map((f) => read(path.join(LZFSE, f))));
    expect(same(lzfseDecode(stream), expected)).toBe(true);
  });
});

/** Rewrite every bvx2 block header as a bvx1 header (fields per the reference's v1 struct). */
function toV1(src: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [];
  for (const b of lzfseScan(src).blocks) {
    if (b.kind !== 'bvx2') {
      out.push(src.subarray(b.offset, b.offset + b.encodedBytes));
      continue;
    }
    const h = readBlockHeader(src, b.offset);
    const v1 = new Uint8Array(V1_HEADER_SIZE);
    const dv = new DataView(v1.buffer);
    v1.set(Buffer.from('bvx1'));
    [h.rawBytes, h.literalPayloadBytes + h.lmdPayloadBytes, h.literals, h.matches, h.literalPayloadBytes, h.lmdPayloadBytes, h.literalBits]
      .forEach((v, i) => dv.setInt32(4 + 4 * i, v, true));
    h.literalState.forEach((v, i) => dv.setUint16(32 + 2 * i, v, true));
    dv.setInt32(40, h.lmdBits, true);
    dv.setUint16(44, h.lState, true);
    dv.setUint16(46, h.mState, true);
    dv.setUint16(48, h.dState, true);
    for (let i = 0; i < FREQ_COUNT; i++) dv.setUint16(50 + 2 * i, h.freq[i]!, true);
    out.push(v1, src.subarray(b.offset + h.headerSize, b.offset + b.encodedBytes));
  }
  out.push(Buffer.from('bvx$'));
  return Buffer.concat(out);
}

describe('LZFSE encode', () => {
  for (const f of inputs) {
    it(`${f}: round trip, and output within 3% of the reference encoder's`, () => {
      const src = read(path.join(LZFSE, f));
      const enc = lzfseEncode(src);
      expect(same(lzfseDecode(enc), src)).toBe(true);
      const ref = read(path.join(LZFSE, f + '.lzfse'));
      expect(enc.length).toBeLessThanOrEqual(ref.length * 1.03);
      // Never worse than storing: a raw block costs 8 bytes plus the end marker.
      expect(enc.length).toBeLessThanOrEqual(src.length + 12);
    });
  }
  it('uses bvxn under 4096 bytes and bvx2 from 4096 on, raw when nothing shrinks', () => {
    expect(lzfseScan(lzfseEncode(read(path.join(LZFSE, 'gpl3-head-4095.txt')))).blocks.map((b) => b.kind)).toEqual(['bvxn']);
    expect(lzfseScan(lzfseEncode(read(path.join(LZFSE, 'gpl3-head-4096.txt')))).blocks.map((b) => b.kind)).toEqual(['bvx2']);
    expect(lzfseScan(lzfseEncode(read(path.join(LZFSE, 'random-64KiB.bin')))).blocks.map((b) => b.kind)).toEqual(['bvx-']);
  });
  it('round-trips inputs that need many blocks, long literal runs and long matches', () => {
    const parts: Uint8Array[] = [];
    let x = 12345;
    for (let i = 0; i < 40; i++) {
      const n = 1000 + ((i * 7919) % 30000);
      const p = new Uint8Array(n);
      for (let j = 0; j < n; j++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; p[j] = i % 3 === 0 ? x >>> 24 : i % 3 === 1 ? 65 + ((x >>> 28) & 3) : 0; }
      parts.push(p);
    }
    const src = Buffer.concat([...parts, ...parts.slice(0, 10)]);
    expect(same(lzfseDecode(lzfseEncode(src)), src)).toBe(true);
  });
});

describe('LZVN', () => {
  for (const f of readdirSync(LZFSE).filter((f) => f.endsWith('.lzvn'))) {
    it(`decodes reference stream ${f}`, () => {
      const expected = read(path.join(LZFSE, f.replace(/\.lzvn$/, '')));
      expect(same(lzvnDecode(read(path.join(LZFSE, f)), expected.length), expected)).toBe(true);
    });
  }
  it('round-trips every input through our encoder', () => {
    for (const f of inputs) {
      const src = read(path.join(LZFSE, f));
      const enc = lzvnEncode(src);
      expect(enc.subarray(enc.length - 8)).toEqual(Uint8Array.of(6, 0, 0, 0, 0, 0, 0, 0));
      expect(same(lzvnDecode(enc, src.length), src)).toBe(true);
    }
  });
  it('rejects a match before the start of the output and a stream without end', () => {
    expect(() => lzvnDecode(Uint8Array.of(0x00, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0), 100)).toThrow(FormatError);
    expect(() => lzvnDecode(Uint8Array.of(0xe3, 0x41, 0x42, 0x43), 100)).toThrow(/no end-of-stream/);
    expect(() => lzvnDecode(Uint8Array.of(0x70, 0, 0, 0, 0, 0, 0, 0, 0), 100)).toThrow(/invalid opcode/);
  });
});

describe('LZSS and complzss', () => {
  for (const f of readdirSync(LZSS)) {
    it(`decodes ${f}`, () => {
      const src = read(path.join(LZSS, f));
      const expected = read(path.join(LZFSE, f.replace(/\.(lzss|complzss)$/, '')));
      const data = f.endsWith('.complzss') ? decodeComplzss(parseComplzss(src)) : lzssDecode(src).data;
      expect(same(data, expected)).toBe(true);
    });
  }
  it('round-trips every input; output never larger than the reference LZSS', () => {
    for (const f of inputs) {
      const src = read(path.join(LZFSE, f));
      const enc = lzssEncode(src);
      expect(same(lzssDecode(enc, src.length).data, src)).toBe(true);
      const refPath = path.join(LZSS, f + '.lzss');
      let ref: Uint8Array | undefined;
      try { ref = read(refPath); } catch { /* only some inputs have a bare reference stream */ }
      if (ref) expect(enc.length).toBeLessThanOrEqual(ref.length);
    }
  });
  it('rebuilds the reference complzss files byte for byte from their stream', () => {
    for (const f of readdirSync(LZSS).filter((f) => f.endsWith('.complzss'))) {
      const src = read(path.join(LZSS, f));
      const c = parseComplzss(src);
      expect(same(buildComplzss(decodeComplzss(c), { stream: c.stream }), src)).toBe(true);
    }
  });
  it('keeps data after the stream and checks the Adler-32', () => {
    const data = read(path.join(LZFSE, 'gpl3.txt'));
    const trailing = Uint8Array.from({ length: 0xc000 }, (_, i) => i & 0xff);
    const built = buildComplzss(data, { trailing });
    const c = parseComplzss(built);
    expect(same(c.trailing, trailing)).toBe(true);
    expect(same(decodeComplzss(c), data)).toBe(true);
    const bad = built.slice();
    bad[0x180 + 100] ^= 0x01;
    expect(() => decodeComplzss(parseComplzss(bad))).toThrow(/Adler-32|decodes to/);
  });
  it('computes Adler-32 as zlib does', async () => {
    const zlib = await import('node:zlib');
    const data = read(path.join(LZFSE, 'gpl3.txt'));
    // zlib's stream trailer is the big-endian Adler-32 of the data.
    const z = zlib.deflateSync(data);
    expect(adler32(data)).toBe(Buffer.from(z.subarray(z.length - 4)).readUInt32BE(0));
  });
  it('rejects sizes that lie', () => {
    const built = buildComplzss(read(path.join(LZFSE, 'gpl3.txt')));
    const big = built.slice();
    new DataView(big.buffer).setUint32(12, 0x7fffffff); // uncompressed size
    expect(() => decodeComplzss(parseComplzss(big))).toThrow(FormatError);
    const past = built.slice();
    new DataView(past.buffer).setUint32(16, built.length); // compressed size beyond the file
    expect(() => parseComplzss(past)).toThrow(/exceeds/);
  });
});
