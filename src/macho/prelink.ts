import { FormatError } from '../errors.js';
import { findSection, findSegment, isZerofill, type MachO } from './macho.js';
import { dictInt, dictString, isDict, parsePlistBytes, type PlistDict } from './plist.js';

// __PRELINK_INFO,__info: the IOKit XML plist a prelinked kernel (and a kernel collection) carries
// about its kexts. Its root dict has _PrelinkInfoDictionary, an array with one dict per kext:
// CFBundleIdentifier, CFBundleVersion, and for kexts with code _PrelinkExecutableLoadAddr/Size
// (the kext's Mach-O inside __PRELINK_TEXT). Keys as XNU's libkern/OSKextLib*.h spell them.

export interface PrelinkKext {
  id: string;
  version?: string;
  loadAddr?: bigint;
  size?: bigint;
  sourceAddr?: bigint;
  /** The kext's kmod_info address, when the plist records it. */
  kmodInfo?: bigint;
  /** No executable: a codeless kext (only its plist is in the kernel). */
  codeless: boolean;
  dict: PlistDict;
}

export function prelinkInfoBytes(m: MachO): { bytes: Uint8Array; fileOffset: number } | undefined {
  const sect = findSection(m, '__PRELINK_INFO', '__info');
  if (sect && !isZerofill(sect) && sect.size > 0n) {
    const start = sect.offset;
    const end = start + Number(sect.size);
    if (end > m.bytes.length) throw new FormatError('__PRELINK_INFO,__info', BigInt(start), 'section runs past the end of the file');
    return { bytes: m.bytes.subarray(start, end), fileOffset: start };
  }
  // Some kernels have the segment without a section table: the plist is the segment's content.
  const seg = findSegment(m, '__PRELINK_INFO');
  if (seg && seg.filesize > 0n) {
    const start = Number(seg.fileoff);
    return { bytes: m.bytes.subarray(start, start + Number(seg.filesize)), fileOffset: start };
  }
  return undefined;
}

export function parsePrelinkInfo(m: MachO): PrelinkKext[] | undefined {
  const raw = prelinkInfoBytes(m);
  if (!raw) return undefined;
  const root = parsePlistBytes(raw.bytes, BigInt(raw.fileOffset));
  if (!isDict(root)) throw new FormatError('__PRELINK_INFO plist', BigInt(raw.fileOffset), 'root is not a <dict>');
  const list = root.get('_PrelinkInfoDictionary');
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new FormatError('__PRELINK_INFO plist', BigInt(raw.fileOffset), '_PrelinkInfoDictionary is not an <array>');
  const out: PrelinkKext[] = [];
  for (const d of list) {
    if (!isDict(d)) continue;
    const id = dictString(d, 'CFBundleIdentifier');
    if (id === undefined) continue;
    const loadAddr = dictInt(d, '_PrelinkExecutableLoadAddr');
    out.push({
      id, version: dictString(d, 'CFBundleVersion'), loadAddr: loadAddr !== undefined ? BigInt.asUintN(64, loadAddr) : undefined,
      size: dictInt(d, '_PrelinkExecutableSize'), sourceAddr: dictInt(d, '_PrelinkExecutableSourceAddr'),
      kmodInfo: dictInt(d, '_PrelinkKmodInfo'), codeless: loadAddr === undefined, dict: d,
    });
  }
  return out;
}
