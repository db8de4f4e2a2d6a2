import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAdt, serializeAdt } from '../../src/dtb/adt.js';
import { parseFdt, serializeFdt } from '../../src/dtb/fdt.js';
import { openDeviceTree } from '../../src/dtb/device-tree.js';
import { loadLayout, defaultLayoutPath } from '../../src/dtb/layout.js';
import { FormatError } from '../../src/errors.js';
import { corpus } from '../helpers/cli.js';
import { dtc, compileDts } from './dtc-oracle.js';

// Mutated inputs may be rejected only with a FormatError; anything else (RangeError, TypeError,
// a hang, an allocation blow-up) is a bug. Deterministic: a fixed-seed generator.

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 36, 8];

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const kind = Math.floor(r() * 4);
  if (kind === 0) return src.subarray(0, Math.floor(r() * src.length)); // truncation
  const b = new Uint8Array(src);
  const dv = new DataView(b.buffer);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(r() * (b.length - 4)) & ~3;
    if (kind === 1) b[Math.floor(r() * b.length)] = Math.floor(r() * 256); // random byte
    else if (kind === 2) dv.setUint32(at, INTERESTING[Math.floor(r() * INTERESTING.length)]!, r() < 0.5); // counts, lengths
    else b[Math.floor(r() * b.length)]! ^= 1 << Math.floor(r() * 8); // bit flip
  }
  return b;
}

function onlyFormatErrors(name: string, input: Uint8Array, parse: (b: Uint8Array) => unknown, count: number, seed: number): number {
  const r = rng(seed);
  let rejected = 0;
  for (let i = 0; i < count; i++) {
    const m = mutate(input, r);
    try {
      parse(m);
    } catch (e) {
      if (!(e instanceof FormatError)) throw new Error(`${name} mutation ${i}: ${(e as Error).name}: ${(e as Error).message}`);
      rejected++;
    }
  }
  return rejected;
}

const adt = new Uint8Array(readFileSync(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre')));

describe('fuzz: only FormatError on mutated device trees', () => {
  it('2000 mutations of the j274 ADT (parse, and re-serialize what parses)', () => {
    const rejected = onlyFormatErrors('ADT', adt, (b) => serializeAdt(parseAdt(b)), 2000, 1);
    expect(rejected).toBeGreaterThan(100);
  });

  it('500 mutations through openDeviceTree (format detection included)', () => {
    onlyFormatErrors('openDeviceTree', adt, (b) => openDeviceTree(b), 500, 2);
  });

  it.skipIf(!dtc)('3000 mutations of a dtc-built FDT (skipped without dtc)', () => {
    const blob = compileDts('/dts-v1/;\n/memreserve/ 0x1000 0x1000;\n/ { #address-cells = <2>; a { s = "x", "yz"; c = <1 2 3>; b = [01 02 03]; e; n@1 { r = <5>; }; }; z { }; };\n');
    const rejected = onlyFormatErrors('FDT', blob, (b) => serializeFdt(parseFdt(b)), 3000, 3);
    expect(rejected).toBeGreaterThan(100);
  });

  it('200 mutations of the layout text', () => {
    const text = readFileSync(defaultLayoutPath(), 'utf8');
    const r = rng(4);
    const alphabet = '0123456789abcdefx_:-[]{}, \n#"';
    for (let i = 0; i < 200; i++) {
      const chars = [...text];
      for (let k = 0; k < 3; k++) chars[Math.floor(r() * chars.length)] = alphabet[Math.floor(r() * alphabet.length)]!;
      try {
        loadLayout(chars.join(''), 'fuzz.yaml');
      } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`layout mutation ${i}: ${(e as Error).name}: ${(e as Error).message}`);
      }
    }
  });
});

describe('ADT: bad input gives one-line FormatErrors with offset and node path', () => {
  const err = (b: Uint8Array) => {
    try {
      parseAdt(b);
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      return (e as FormatError).oneLine();
    }
    throw new Error('accepted');
  };
  it('truncated tree', () => {
    expect(err(adt.subarray(0, adt.length - 100))).toMatch(/^offset 0x[0-9a-f]+: ADT: .*\(in node \/[^)]*\)$/);
  });
  it('property length past the end, naming the node', () => {
    const b = new Uint8Array(adt);
    const dv = new DataView(b.buffer);
    // The root's first property: name at 8, length at 8 + 32.
    dv.setUint32(40, 0x7fff_fff0, true);
    expect(err(b)).toMatch(/^offset 0x28: ADT: property ".*" is 2147483632 bytes, only \d+ left \(in node \/\)$/);
  });
  it('node and property counts that cannot fit', () => {
    const b = new Uint8Array(adt);
    new DataView(b.buffer).setUint32(0, 0xffff_ffff, true);
    expect(err(b)).toMatch(/offset 0x0: ADT: node claims 4294967295 properties/);
    const c = new Uint8Array(adt);
    new DataView(c.buffer).setUint32(4, 0x0100_0000, true);
    expect(err(c)).toMatch(/offset 0x4: ADT: node claims 16777216 children/);
  });
  it('a property name without NUL', () => {
    const b = new Uint8Array(adt);
    b.fill(0x41, 8, 8 + 32);
    expect(err(b)).toMatch(/offset 0x8: ADT: property name has no NUL within 32 bytes/);
  });
  it('trailing bytes after the root', () => {
    const b = new Uint8Array(adt.length + 4);
    b.set(adt);
    expect(err(b)).toMatch(/4 bytes follow the root node/);
  });
});
