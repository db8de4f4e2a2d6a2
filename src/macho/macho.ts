import { FormatError } from '../errors.js';
import {
  MACH_HEADER_64_SIZE, MH_CIGAM, MH_CIGAM_64, MH_MAGIC, MH_MAGIC_64, FAT_MAGIC, FAT_MAGIC_64, LC_CODE_SIGNATURE,
  LC_DYLD_CHAINED_FIXUPS, LC_DYLD_EXPORTS_TRIE, S_ZEROFILL, S_GB_ZEROFILL, S_THREAD_LOCAL_ZEROFILL, SECTION_TYPE,
} from './macho-constants.js';
import { need, setU32, u32 } from './macho-bytes.js';
import {
  checkRange, loadCommandName, parseLoadCommand, serializeLoadCommand,
  type LoadCommand, type Section64, type Segment64,
} from './load-commands.js';

// A 64-bit Mach-O image as a typed, zero-copy view. File offsets inside load commands are relative
// to the start of `bytes`: for a thin file or a fat slice that is the image itself; for a fileset
// entry it is the whole collection (the entry's header sits at headerOffset).

/** struct mach_header_64 (mach-o/loader.h) */
export interface MachHeader64 {
  magic: number;
  cputype: number;
  cpusubtype: number;
  filetype: number;
  ncmds: number;
  sizeofcmds: number;
  flags: number;
  reserved: number;
}

export interface MachO {
  bytes: Uint8Array;
  headerOffset: number;
  header: MachHeader64;
  commands: LoadCommand[];
  segments: Segment64[];
}

/** More commands than this cannot be real (the biggest kernel collections have a few thousand). */
const MAX_NCMDS = 1 << 16;

export function isMachO64(b: Uint8Array, off = 0): boolean {
  return b.length >= off + 4 && u32(b, off) === MH_MAGIC_64;
}

export function parseMachO(bytes: Uint8Array, headerOffset = 0): MachO {
  need(bytes, headerOffset, MACH_HEADER_64_SIZE, 'mach_header_64');
  const magic = u32(bytes, headerOffset);
  const at = BigInt(headerOffset);
  if (magic !== MH_MAGIC_64) {
    if (magic === MH_MAGIC) throw new FormatError('mach_header', at, '32-bit Mach-O is not supported (only 64-bit)');
    if (magic === MH_CIGAM || magic === MH_CIGAM_64) throw new FormatError('mach_header', at, 'big-endian Mach-O is not supported');
    const be = ((bytes[headerOffset]! << 24) | (bytes[headerOffset + 1]! << 16) | (bytes[headerOffset + 2]! << 8) | bytes[headerOffset + 3]!) >>> 0;
    if (be === FAT_MAGIC || be === FAT_MAGIC_64) throw new FormatError('mach_header_64', at, 'this is a fat (universal) file: pick a slice');
    throw new FormatError('mach_header_64', at, `bad magic 0x${magic.toString(16)} (expected MH_MAGIC_64 0xfeedfacf)`);
  }
  const h = headerOffset;
  const header: MachHeader64 = {
    magic, cputype: u32(bytes, h + 4), cpusubtype: u32(bytes, h + 8), filetype: u32(bytes, h + 12),
    ncmds: u32(bytes, h + 16), sizeofcmds: u32(bytes, h + 20), flags: u32(bytes, h + 24), reserved: u32(bytes, h + 28),
  };
  if (header.ncmds > MAX_NCMDS) throw new FormatError('mach_header_64', at + 16n, `ncmds ${header.ncmds} is absurd`);
  const cmdsStart = h + MACH_HEADER_64_SIZE;
  if (cmdsStart + header.sizeofcmds > bytes.length) {
    throw new FormatError('mach_header_64', at + 20n, `sizeofcmds ${header.sizeofcmds} runs past the end of the file`);
  }
  if (header.ncmds * 8 > header.sizeofcmds) {
    throw new FormatError('mach_header_64', at + 16n, `ncmds ${header.ncmds} cannot fit in sizeofcmds ${header.sizeofcmds}`);
  }
  const commands: LoadCommand[] = [];
  const segments: Segment64[] = [];
  const end = cmdsStart + header.sizeofcmds;
  let off = cmdsStart;
  for (let i = 0; i < header.ncmds; i++) {
    if (off + 8 > end) throw new FormatError('load_command', BigInt(off), `command ${i} starts past sizeofcmds`);
    const cmdsize = u32(bytes, off + 4);
    if (cmdsize < 8 || cmdsize % 8 !== 0) {
      throw new FormatError(loadCommandName(u32(bytes, off)), BigInt(off), `cmdsize ${cmdsize} is not a positive multiple of 8`);
    }
    if (off + cmdsize > end) throw new FormatError(loadCommandName(u32(bytes, off)), BigInt(off), `cmdsize ${cmdsize} runs past sizeofcmds`);
    const lc = parseLoadCommand(bytes.subarray(off, off + cmdsize), off);
    validateRanges(lc, bytes.length);
    commands.push(lc);
    if (lc.kind === 'segment_64') segments.push(lc.segment);
    off += cmdsize;
  }
  checkSegmentOverlap(segments, commands);
  return { bytes, headerOffset, header, commands, segments };
}

function validateRanges(lc: LoadCommand, fileLength: number): void {
  const name = loadCommandName(lc.cmd);
  switch (lc.kind) {
    case 'segment_64': {
      const s = lc.segment;
      checkRange(fileLength, `${name} ${s.segname}`, lc.offset, s.fileoff, s.filesize);
      if (s.vmaddr + s.vmsize > 0xffffffffffffffffn) throw new FormatError(`${name} ${s.segname}`, BigInt(lc.offset), 'vmaddr + vmsize overflows 64 bits');
      for (const c of s.sections) {
        if (!isZerofill(c) && c.offset !== 0) checkRange(fileLength, `section ${c.segname},${c.sectname}`, lc.offset, c.offset, c.size);
      }
      break;
    }
    case 'symtab':
      checkRange(fileLength, 'LC_SYMTAB symbols', lc.offset, lc.symoff, BigInt(lc.nsyms) * 16n);
      checkRange(fileLength, 'LC_SYMTAB strings', lc.offset, lc.stroff, lc.strsize);
      break;
    case 'dysymtab':
      checkRange(fileLength, 'LC_DYSYMTAB indirect symbols', lc.offset, lc.indirectsymoff, BigInt(lc.nindirectsyms) * 4n);
      break;
    case 'dyld_info':
      checkRange(fileLength, `${name} rebase`, lc.offset, lc.rebase_off, lc.rebase_size);
      checkRange(fileLength, `${name} bind`, lc.offset, lc.bind_off, lc.bind_size);
      checkRange(fileLength, `${name} weak bind`, lc.offset, lc.weak_bind_off, lc.weak_bind_size);
      checkRange(fileLength, `${name} lazy bind`, lc.offset, lc.lazy_bind_off, lc.lazy_bind_size);
      checkRange(fileLength, `${name} export`, lc.offset, lc.export_off, lc.export_size);
      break;
    case 'linkedit_data':
      checkRange(fileLength, name, lc.offset, lc.dataoff, lc.datasize);
      break;
    default:
      break;
  }
}

function checkSegmentOverlap(segments: Segment64[], commands: LoadCommand[]): void {
  const withFile = segments.filter((s) => s.filesize > 0n).sort((a, b) => (a.fileoff < b.fileoff ? -1 : a.fileoff > b.fileoff ? 1 : 0));
  for (let i = 1; i < withFile.length; i++) {
    const a = withFile[i - 1]!;
    const b = withFile[i]!;
    if (b.fileoff < a.fileoff + a.filesize) {
      const lc = commands.find((c) => c.kind === 'segment_64' && c.segment === b)!;
      throw new FormatError(`LC_SEGMENT_64 ${b.segname}`, BigInt(lc.offset), `file range overlaps segment ${a.segname}`);
    }
  }
  const withVm = segments.filter((s) => s.vmsize > 0n).sort((a, b) => (a.vmaddr < b.vmaddr ? -1 : a.vmaddr > b.vmaddr ? 1 : 0));
  for (let i = 1; i < withVm.length; i++) {
    const a = withVm[i - 1]!;
    const b = withVm[i]!;
    if (b.vmaddr < a.vmaddr + a.vmsize) {
      const lc = commands.find((c) => c.kind === 'segment_64' && c.segment === b)!;
      throw new FormatError(`LC_SEGMENT_64 ${b.segname}`, BigInt(lc.offset), `address range overlaps segment ${a.segname}`);
    }
  }
}

export function isZerofill(s: Section64): boolean {
  const t = s.flags & SECTION_TYPE;
  return t === S_ZEROFILL || t === S_GB_ZEROFILL || t === S_THREAD_LOCAL_ZEROFILL;
}

/**
 * The file again: header and load commands re-serialized from the typed views, everything else
 * copied. serializeMachO(parseMachO(x)) equals x byte for byte.
 */
export function serializeMachO(m: MachO): Uint8Array {
  const out = m.bytes.slice();
  const h = m.headerOffset;
  const cmds = m.commands.map(serializeLoadCommand);
  const sizeofcmds = cmds.reduce((n, c) => n + c.length, 0);
  const firstData = firstDataOffset(m);
  if (h + MACH_HEADER_64_SIZE + sizeofcmds > firstData) {
    throw new FormatError('mach_header_64', BigInt(h), `load commands (${sizeofcmds} bytes) would overwrite section data at 0x${firstData.toString(16)}`);
  }
  const hdr = [m.header.magic, m.header.cputype, m.header.cpusubtype, m.header.filetype, cmds.length, sizeofcmds, m.header.flags, m.header.reserved];
  hdr.forEach((v, i) => setU32(out, h + 4 * i, v));
  let off = h + MACH_HEADER_64_SIZE;
  for (const c of cmds) {
    out.set(c, off);
    off += c.length;
  }
  // Commands that shrank leave zeros, as a linker leaves header padding.
  const oldEnd = h + MACH_HEADER_64_SIZE + m.header.sizeofcmds;
  if (off < oldEnd) out.fill(0, off, oldEnd);
  return out;
}

/** Lowest file offset of section contents after the header (where load commands must stop). */
function firstDataOffset(m: MachO): number {
  let first = m.bytes.length;
  for (const s of m.segments) {
    for (const c of s.sections) {
      if (!isZerofill(c) && c.offset > m.headerOffset && c.size > 0n) first = Math.min(first, c.offset);
    }
  }
  return first;
}

// ---- queries -------------------------------------------------------------------------------

export function findSegment(m: MachO, name: string): Segment64 | undefined {
  return m.segments.find((s) => s.segname === name);
}

export function findSection(m: MachO, segname: string, sectname: string): Section64 | undefined {
  for (const s of m.segments) for (const c of s.sections) if (c.segname === segname && c.sectname === sectname) return c;
  return undefined;
}

export function commandsOf<K extends LoadCommand['kind']>(m: MachO, kind: K): Extract<LoadCommand, { kind: K }>[] {
  return m.commands.filter((c) => c.kind === kind) as Extract<LoadCommand, { kind: K }>[];
}

export function commandOf<K extends LoadCommand['kind']>(m: MachO, kind: K): Extract<LoadCommand, { kind: K }> | undefined {
  return m.commands.find((c) => c.kind === kind) as Extract<LoadCommand, { kind: K }> | undefined;
}

export function linkeditData(m: MachO, cmd: number): Extract<LoadCommand, { kind: 'linkedit_data' }> | undefined {
  return m.commands.find((c) => c.kind === 'linkedit_data' && c.cmd === cmd) as Extract<LoadCommand, { kind: 'linkedit_data' }> | undefined;
}

export const chainedFixupsCommand = (m: MachO) => linkeditData(m, LC_DYLD_CHAINED_FIXUPS);
export const exportsTrieCommand = (m: MachO) => linkeditData(m, LC_DYLD_EXPORTS_TRIE);
export const codeSignatureCommand = (m: MachO) => linkeditData(m, LC_CODE_SIGNATURE);

export function uuidString(m: MachO): string | undefined {
  const u = commandOf(m, 'uuid');
  if (!u) return undefined;
  const h = Buffer.from(u.uuid).toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The segment whose address range holds va. */
export function segmentForVm(m: MachO, va: bigint): Segment64 | undefined {
  for (const s of m.segments) if (va >= s.vmaddr && va < s.vmaddr + s.vmsize) return s;
  return undefined;
}

/** File offset (into m.bytes) of virtual address va, or undefined if va is not backed by file data. */
export function vmToFileOffset(m: MachO, va: bigint): bigint | undefined {
  for (const s of m.segments) {
    if (va >= s.vmaddr && va < s.vmaddr + s.filesize && s.filesize > 0n) return s.fileoff + (va - s.vmaddr);
  }
  return undefined;
}

export function fileOffsetToVm(m: MachO, off: bigint): bigint | undefined {
  for (const s of m.segments) {
    if (s.filesize > 0n && off >= s.fileoff && off < s.fileoff + s.filesize) return s.vmaddr + (off - s.fileoff);
  }
  return undefined;
}

/** `len` bytes at va (zero-copy); FormatError if not file-backed. */
export function readVm(m: MachO, va: bigint, len: number, structure = 'virtual address'): Uint8Array {
  const off = vmToFileOffset(m, va);
  if (off === undefined) throw new FormatError(structure, va, `address 0x${va.toString(16)} is not backed by file data`);
  const seg = segmentForVm(m, va)!;
  const avail = seg.fileoff + seg.filesize - off;
  if (BigInt(len) > avail) throw new FormatError(structure, off, `${len} bytes at 0x${va.toString(16)} run past segment ${seg.segname}`);
  return m.bytes.subarray(Number(off), Number(off) + len);
}

/** Address of the mach header in memory: the segment that maps the header's file offset. */
export function headerVmaddr(m: MachO): bigint | undefined {
  const s = m.segments.find((x) => x.fileoff === BigInt(m.headerOffset) && x.filesize > 0n);
  if (s) return s.vmaddr;
  // Plain files: the __TEXT segment at fileoff 0 holds the header.
  return fileOffsetToVm(m, BigInt(m.headerOffset));
}

/** Entry point: LC_UNIXTHREAD's pc, or LC_MAIN's entryoff from the header's address. */
export function entryPoint(m: MachO): { vmaddr: bigint; source: 'LC_UNIXTHREAD' | 'LC_MAIN' } | undefined {
  const t = m.commands.find((c) => c.kind === 'thread' && c.pc !== undefined);
  if (t && t.kind === 'thread') return { vmaddr: t.pc!, source: 'LC_UNIXTHREAD' };
  const main = commandOf(m, 'entry_point');
  if (main) {
    const base = headerVmaddr(m);
    if (base !== undefined) return { vmaddr: base + main.entryoff, source: 'LC_MAIN' };
  }
  return undefined;
}

/** The lowest vmaddr of a segment with content (__PAGEZERO excluded): the image's preferred base. */
export function imageBase(m: MachO): bigint {
  let min: bigint | undefined;
  for (const s of m.segments) {
    if (s.filesize === 0n && s.initprot === 0) continue;
    if (min === undefined || s.vmaddr < min) min = s.vmaddr;
  }
  return min ?? 0n;
}
