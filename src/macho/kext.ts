import { FormatError } from '../errors.js';
import { findSection, isZerofill, type MachO } from './macho.js';
import { KERNEL_ENTRY_ID, filesetEntries, isFileset, openEntry } from './fileset.js';
import { parsePrelinkInfo, type PrelinkKext } from './prelink.js';
import { dictString, isDict, parsePlistBytes } from './plist.js';
import { parseSymtab } from './symtab.js';

// One row per kext in a kernel collection (MH_FILESET) or an older prelinked kernel, with where
// each fact came from: versions from __PRELINK_INFO, else the kext's own Info.plist section,
// else its kmod_info (libkern/libkern/mach/kmod.h: name at +16, version at +80).

export interface KextRow {
  id: string;
  version?: string;
  versionSource?: 'prelink-info' | 'info-plist' | 'kmod_info';
  vmaddr?: bigint;
  size?: bigint;
  /** File offset of the kext's mach header (when it has code). */
  fileoff?: bigint;
  codeless: boolean;
  source: 'fileset' | 'prelink';
}

const KMOD_INFO_VERSION = 1;
const KMOD_MAX_NAME = 64;

export function listKexts(m: MachO): KextRow[] {
  const prelink = parsePrelinkInfo(m) ?? [];
  const byId = new Map<string, PrelinkKext>(prelink.map((k) => [k.id, k]));
  const rows: KextRow[] = [];
  if (isFileset(m)) {
    const seen = new Set<string>();
    for (const e of filesetEntries(m)) {
      if (e.id === KERNEL_ENTRY_ID) continue;
      seen.add(e.id);
      const em = openEntry(m, e);
      const size = em.segments.filter((s) => s.segname !== '__LINKEDIT').reduce((n, s) => n + s.vmsize, 0n);
      const row: KextRow = { id: e.id, vmaddr: e.vmaddr, size, fileoff: e.fileoff, codeless: false, source: 'fileset' };
      fillVersion(row, em, byId.get(e.id));
      rows.push(row);
    }
    for (const k of prelink) if (!seen.has(k.id) && k.codeless) rows.push({ id: k.id, version: k.version, versionSource: k.version ? 'prelink-info' : undefined, codeless: true, source: 'fileset' });
    return rows;
  }
  for (const k of prelink) {
    const row: KextRow = { id: k.id, vmaddr: k.loadAddr, size: k.size, codeless: k.codeless, source: 'prelink' };
    if (k.version) { row.version = k.version; row.versionSource = 'prelink-info'; }
    rows.push(row);
  }
  return rows;
}

function fillVersion(row: KextRow, em: MachO, pk: PrelinkKext | undefined): void {
  if (pk?.version) { row.version = pk.version; row.versionSource = 'prelink-info'; return; }
  const own = ownInfoPlistVersion(em);
  if (own) { row.version = own; row.versionSource = 'info-plist'; return; }
  const km = kmodInfoVersion(em, row.id);
  if (km) { row.version = km; row.versionSource = 'kmod_info'; }
}

/** CFBundleVersion from a __TEXT,__info_plist section (ld -sectcreate), if the kext has one. */
function ownInfoPlistVersion(em: MachO): string | undefined {
  const s = findSection(em, '__TEXT', '__info_plist');
  if (!s || isZerofill(s) || s.size === 0n) return undefined;
  const p = parsePlistBytes(em.bytes.subarray(s.offset, s.offset + Number(s.size)), BigInt(s.offset));
  return isDict(p) ? dictString(p, 'CFBundleVersion') : undefined;
}

/** The version field of the kext's kmod_info: by the _kmod_info symbol, else by its name field. */
export function kmodInfoVersion(em: MachO, id: string): string | undefined {
  const b = em.bytes;
  const readAt = (off: number): string | undefined => {
    if (off < 8 || off + 16 + 2 * KMOD_MAX_NAME > b.length) return undefined;
    if (((b[off + 8]! | (b[off + 9]! << 8) | (b[off + 10]! << 16) | (b[off + 11]! << 24)) >>> 0) !== KMOD_INFO_VERSION) return undefined;
    const v = b.subarray(off + 80, off + 80 + KMOD_MAX_NAME);
    const nul = v.indexOf(0);
    return nul > 0 ? new TextDecoder('latin1').decode(v.subarray(0, nul)) : undefined;
  };
  let sym;
  try {
    sym = parseSymtab(em).find((s) => s.name === '_kmod_info' && s.n_sect !== 0);
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
  }
  if (sym) {
    for (const seg of em.segments) {
      if (sym.n_value >= seg.vmaddr && sym.n_value < seg.vmaddr + seg.filesize) return readAt(Number(seg.fileoff + sym.n_value - seg.vmaddr));
    }
  }
  const name = Buffer.from(id + '\0', 'latin1');
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (const seg of em.segments) {
    if (!seg.segname.startsWith('__DATA') || seg.filesize === 0n) continue;
    const start = Number(seg.fileoff);
    const end = start + Number(seg.filesize);
    for (let at = buf.indexOf(name, start); at >= 0 && at < end; at = buf.indexOf(name, at + 1)) {
      const v = readAt(at - 16);
      if (v) return v;
    }
  }
  return undefined;
}
