import { describe, it, expect } from 'vitest';
import { compareBinary, compareFolded, foldUnit, hfsDecompose, toUtf16 } from '../../src/img/hfsplus/unicode.js';
import { foldName, nameHash } from '../../src/img/apfs/names.js';
import { crc32c } from '../../src/img/apfs/checksum.js';

// Facts from Apple TN1150 (HFS+ names) and the APFS Reference / RFC 3720 (CRC-32C).

const u = (s: string) => toUtf16(s);

describe('HFS+ names (TN1150)', () => {
  it('folds case with gLowerCaseTable: ASCII, Latin-1, Greek, Cyrillic, full-width', () => {
    expect(foldUnit(0x41)).toBe(0x61);
    expect(foldUnit(0xc6)).toBe(0xe6); // Æ
    expect(foldUnit(0x391)).toBe(0x3b1); // Α
    expect(foldUnit(0x410)).toBe(0x430); // А
    expect(foldUnit(0xff21)).toBe(0xff41); // Ａ
    // Precomposed letters are not folded: names are decomposed before comparison.
    expect(foldUnit(0xc5)).toBe(0xc5);
    // U+0000 sorts after everything (0xFFFF); the listed ignorables compare as absent.
    expect(foldUnit(0)).toBe(0xffff);
    for (const c of [0x200c, 0x200d, 0x200e, 0x200f, 0x202a, 0x202e, 0x206a, 0x206f, 0xfeff]) expect(foldUnit(c)).toBe(0);
  });

  it('compares like FastUnicodeCompare, and binary for HFSX', () => {
    expect(compareFolded(u('README'), u('readme'))).toBe(0);
    expect(compareFolded(u('a\u200db'), u('ab'))).toBe(0);
    expect(compareFolded(u('a'), u('B'))).toBe(-1);
    expect(compareFolded(u('ab'), u('a'))).toBe(1);
    expect(compareBinary(u('B'), u('a'))).toBeLessThan(0);
    expect(compareBinary(u('a'), u('ab'))).toBeLessThan(0);
  });

  it('decomposes except in the ranges TN1150 excludes', () => {
    expect(hfsDecompose('é')).toBe('e\u0301');
    expect(hfsDecompose('한')).toBe('\u1112\u1161\u11ab');
    expect(hfsDecompose('\u2126')).toBe('\u2126'); // OHM SIGN: in U+2000-2FFF, kept
    expect('\u2126'.normalize('NFD')).toBe('\u03a9'); // (which plain NFD would change)
    expect(hfsDecompose('\uf900')).toBe('\uf900'); // CJK compatibility ideograph, kept
    expect(hfsDecompose('é\u2126é')).toBe('e\u0301\u2126e\u0301');
  });
});

describe('APFS names (APFS Reference)', () => {
  it('CRC-32C matches the standard check value (no final inversion applied here)', () => {
    // RFC 3720 check value for "123456789" is 0xE3069283 = ~crc32c(0xffffffff, ...).
    expect((~crc32c(0xffffffff, new TextEncoder().encode('123456789'))) >>> 0).toBe(0xe3069283);
  });

  it('folds and normalizes before hashing', () => {
    expect(foldName('Straße', true)).toBe('strasse');
    expect(foldName('ﬁ', true)).toBe('fi');
    expect(foldName('Café', false)).toBe('Cafe\u0301');
    expect(nameHash('ΣΑΣ', true)).toBe(nameHash('σας', true));
    expect(nameHash('x', true)).toBeLessThan(1 << 22);
  });
});
