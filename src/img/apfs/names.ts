import { crc32c } from './checksum.js';

// APFS directory-entry name hashing (APFS Reference, "Directory Entries"): the name in canonical
// decomposition, case-folded on case-insensitive volumes, as UTF-32LE code points, through
// CRC-32C; the low 22 bits are kept.
//
// Case folding is Unicode full case folding. JavaScript has none built in; we take each code
// point's toUpperCase().toLowerCase(), which equals full case folding for Latin, Greek, Cyrillic,
// Armenian and the ligatures (ß -> ss, ﬁ -> fi, final sigma -> σ), and differs only for a few
// scripts whose folding maps to upper case (Cherokee) — documented in docs/ramdisk.md.

export function foldName(name: string, caseInsensitive: boolean): string {
  const nfd = name.normalize('NFD');
  if (!caseInsensitive) return nfd;
  let out = '';
  for (const ch of nfd) out += ch.toUpperCase().toLowerCase();
  return out.normalize('NFD');
}

export function nameHash(name: string, caseInsensitive: boolean): number {
  const folded = foldName(name, caseInsensitive);
  const cps = [...folded].map((c) => c.codePointAt(0)!);
  const buf = new Uint8Array(cps.length * 4);
  const dv = new DataView(buf.buffer);
  cps.forEach((cp, i) => dv.setUint32(i * 4, cp, true));
  return crc32c(0xffffffff, buf) & 0x3fffff;
}
