import { FormatError } from '../errors.js';

// What the patch engine sees of a kernel collection: one PatchTarget per image (the kernel,
// each kext), all sharing the collection's bytes. Read straight from the Mach-O load commands
// (mach-o/loader.h) so the engine works on an MH_FILESET collection, a single MH_EXECUTE kernel
// or a single MH_KEXT_BUNDLE alike.

export const KERNEL_ID = 'com.apple.kernel';

// mach-o/loader.h
const MH_MAGIC_64 = 0xfeedfacf;
const MH_EXECUTE = 0x2;
const MH_KEXT_BUNDLE = 0xb;
const MH_FILESET = 0xc;
const LC_SEGMENT_64 = 0x19;
const LC_SYMTAB = 0x2;
const LC_FILESET_ENTRY = 0x80000035;
const LC_DYLD_CHAINED_FIXUPS = 0x80000034;
const S_ATTR_PURE_INSTRUCTIONS = 0x80000000;
const S_ATTR_SOME_INSTRUCTIONS = 0x400;
const VM_PROT_EXECUTE = 4;
// mach/machine.h
const CPU_TYPE_ARM64 = 0x0100000c;
const CPU_SUBTYPE_ARM64E = 2;

export interface SectionView {
  segname: string;
  sectname: string;
  addr: bigint;
  size: bigint;
  /** File offset in the collection. */
  offset: bigint;
  code: boolean;
}

export interface SegmentView {
  segname: string;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: bigint;
  filesize: bigint;
  executable: boolean;
  sections: SectionView[];
}

export interface PatchTarget {
  /** Bundle id, or com.apple.kernel. */
  id: string;
  /** The whole collection (shared by every target). */
  bytes: Uint8Array;
  segments: SegmentView[];
  symbols: Map<string, bigint>;
}

export interface Collection {
  bytes: Uint8Array;
  arch: 'arm64' | 'arm64e' | 'other';
  targets: Map<string, PatchTarget>;
  /** "21.4.0", from the kernel's "Darwin Kernel Version" string; null if not found. */
  darwin: string | null;
  /** Offset and size of the collection's LC_DYLD_CHAINED_FIXUPS payload, if any. */
  chainedFixups: { dataoff: number; datasize: number } | null;
  /** Lowest segment vmaddr of the collection (the base chained-fixup targets count from). */
  baseVmaddr: bigint;
  /** The top-level segments, in load-command order (chained-fixup segment indexes use it). */
  segments: SegmentView[];
}

const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number) => BigInt(u32(b, o)) | (BigInt(u32(b, o + 4)) << 32n);
const latin1 = new TextDecoder('latin1');
function name16(b: Uint8Array, o: number): string {
  let e = o;
  while (e < o + 16 && b[e] !== 0) e++;
  return latin1.decode(b.subarray(o, e));
}

interface Header {
  filetype: number;
  cpusubtype: number;
  cputype: number;
  commands: { cmd: number; off: number; size: number }[];
}

function readHeader(b: Uint8Array, at: number, what: string): Header {
  if (at < 0 || at + 32 > b.length) throw new FormatError(what, BigInt(at), 'mach_header_64 outside the file');
  if (u32(b, at) !== MH_MAGIC_64) throw new FormatError(what, BigInt(at), `not a 64-bit Mach-O (magic 0x${u32(b, at).toString(16)})`);
  const ncmds = u32(b, at + 16);
  const sizeofcmds = u32(b, at + 20);
  if (at + 32 + sizeofcmds > b.length) throw new FormatError(what, BigInt(at), `load commands (${sizeofcmds} bytes) run past the end of the file`);
  const commands: Header['commands'] = [];
  let off = at + 32;
  const end = off + sizeofcmds;
  for (let i = 0; i < ncmds; i++) {
    if (off + 8 > end) throw new FormatError(`${what} load command ${i}`, BigInt(off), 'runs past sizeofcmds');
    const size = u32(b, off + 4);
    if (size < 8 || off + size > end) throw new FormatError(`${what} load command ${i}`, BigInt(off), `bad cmdsize ${size}`);
    commands.push({ cmd: u32(b, off), off, size });
    off += size;
  }
  return { cputype: u32(b, at + 4), cpusubtype: u32(b, at + 8), filetype: u32(b, at + 12), commands };
}

function readSegments(b: Uint8Array, h: Header): SegmentView[] {
  const segs: SegmentView[] = [];
  for (const c of h.commands) {
    if (c.cmd !== LC_SEGMENT_64) continue;
    if (c.size < 72) throw new FormatError('LC_SEGMENT_64', BigInt(c.off), `cmdsize ${c.size} too small`);
    const nsects = u32(b, c.off + 64);
    if (72 + nsects * 80 > c.size) throw new FormatError('LC_SEGMENT_64', BigInt(c.off), `${nsects} sections do not fit`);
    const seg: SegmentView = {
      segname: name16(b, c.off + 8), vmaddr: u64(b, c.off + 24), vmsize: u64(b, c.off + 32),
      fileoff: u64(b, c.off + 40), filesize: u64(b, c.off + 48),
      executable: (u32(b, c.off + 60) & VM_PROT_EXECUTE) !== 0, sections: [],
    };
    if (seg.fileoff + seg.filesize > BigInt(b.length)) {
      throw new FormatError(`LC_SEGMENT_64 ${seg.segname}`, BigInt(c.off), `file range 0x${seg.fileoff.toString(16)}+0x${seg.filesize.toString(16)} is past the end of the file`);
    }
    for (let i = 0; i < nsects; i++) {
      const o = c.off + 72 + i * 80;
      const flags = u32(b, o + 64);
      const sect: SectionView = {
        sectname: name16(b, o), segname: name16(b, o + 16), addr: u64(b, o + 32), size: u64(b, o + 40),
        offset: BigInt(u32(b, o + 48)), code: (flags & (S_ATTR_PURE_INSTRUCTIONS | S_ATTR_SOME_INSTRUCTIONS)) !== 0,
      };
      // Zero-fill sections (offset 0) have no bytes to patch.
      if (sect.offset !== 0n && sect.offset + sect.size > BigInt(b.length)) {
        throw new FormatError(`section ${sect.segname},${sect.sectname}`, BigInt(o), 'extends past the end of the file');
      }
      seg.sections.push(sect);
    }
    segs.push(seg);
  }
  return segs;
}

function readSymbols(b: Uint8Array, h: Header): Map<string, bigint> {
  const syms = new Map<string, bigint>();
  const st = h.commands.find((c) => c.cmd === LC_SYMTAB);
  if (!st) return syms;
  const symoff = u32(b, st.off + 8);
  const nsyms = u32(b, st.off + 12);
  const stroff = u32(b, st.off + 16);
  const strsize = u32(b, st.off + 20);
  if (symoff + nsyms * 16 > b.length || stroff + strsize > b.length) throw new FormatError('LC_SYMTAB', BigInt(st.off), 'symbol or string table past the end of the file');
  const strEnd = stroff + strsize;
  for (let i = 0; i < nsyms; i++) {
    const o = symoff + i * 16;
    const type = b[o + 4]!;
    if (type & 0xe0) continue; // N_STAB debugging entries
    if ((type & 0x0e) !== 0x0e) continue; // only N_SECT (defined in a section)
    const strx = u32(b, o);
    if (strx >= strsize) continue;
    let e = stroff + strx;
    while (e < strEnd && b[e] !== 0) e++;
    syms.set(latin1.decode(b.subarray(stroff + strx, e)), u64(b, o + 8));
  }
  return syms;
}

function darwinVersion(b: Uint8Array, kernel: PatchTarget | undefined): string | null {
  const needle = Buffer.from('Darwin Kernel Version ');
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const ranges = kernel ? kernel.segments.map((s) => [Number(s.fileoff), Number(s.fileoff + s.filesize)] as const) : [[0, b.length] as const];
  for (const [start, end] of ranges) {
    const at = buf.indexOf(needle, start);
    if (at >= 0 && at < end) {
      const m = /^(\d+)\.(\d+)\.(\d+)/.exec(latin1.decode(b.subarray(at + needle.length, at + needle.length + 16)));
      if (m) return `${m[1]}.${m[2]}.${m[3]}`;
    }
  }
  return null;
}

/** Build the engine's view of a kernel collection (or a single kernel / kext Mach-O). */
export function openCollection(bytes: Uint8Array, singleId = KERNEL_ID): Collection {
  const top = readHeader(bytes, 0, 'mach_header_64');
  const targets = new Map<string, PatchTarget>();
  let segmentsForBase: SegmentView[];
  if (top.filetype === MH_FILESET) {
    segmentsForBase = readSegments(bytes, top);
    for (const c of top.commands) {
      if (c.cmd !== LC_FILESET_ENTRY) continue;
      if (c.size < 32) throw new FormatError('LC_FILESET_ENTRY', BigInt(c.off), `cmdsize ${c.size} too small`);
      const fileoff = Number(u64(bytes, c.off + 16));
      const idOff = u32(bytes, c.off + 24);
      if (idOff < 32 || idOff >= c.size) throw new FormatError('LC_FILESET_ENTRY', BigInt(c.off), 'entry_id outside the command');
      let e = c.off + idOff;
      while (e < c.off + c.size && bytes[e] !== 0) e++;
      const id = latin1.decode(bytes.subarray(c.off + idOff, e));
      const h = readHeader(bytes, fileoff, `fileset entry ${id}`);
      targets.set(id, { id, bytes, segments: readSegments(bytes, h), symbols: readSymbols(bytes, h) });
    }
  } else if (top.filetype === MH_EXECUTE || top.filetype === MH_KEXT_BUNDLE) {
    const t: PatchTarget = { id: singleId, bytes, segments: readSegments(bytes, top), symbols: readSymbols(bytes, top) };
    segmentsForBase = t.segments;
    targets.set(t.id, t);
  } else {
    throw new FormatError('mach_header_64', 0n, `filetype 0x${top.filetype.toString(16)} is not a kernel collection, kernel or kext`);
  }
  const fx = top.commands.find((c) => c.cmd === LC_DYLD_CHAINED_FIXUPS);
  const chainedFixups = fx ? { dataoff: u32(bytes, fx.off + 8), datasize: u32(bytes, fx.off + 12) } : null;
  const mapped = segmentsForBase.filter((s) => s.vmsize > 0n && s.segname !== '__PAGEZERO');
  const baseVmaddr = mapped.reduce((m, s) => (s.vmaddr < m ? s.vmaddr : m), mapped[0]?.vmaddr ?? 0n);
  const arch = top.cputype !== CPU_TYPE_ARM64 ? 'other' : (top.cpusubtype & 0xff) === CPU_SUBTYPE_ARM64E ? 'arm64e' : 'arm64';
  return { bytes, arch, targets, darwin: darwinVersion(bytes, targets.get(KERNEL_ID)), chainedFixups, baseVmaddr, segments: segmentsForBase };
}

/** File offset of a virtual address inside a target, or undefined if it is not file-backed. */
export function vmToOffset(t: PatchTarget, vm: bigint): bigint | undefined {
  for (const s of t.segments) {
    if (vm >= s.vmaddr && vm < s.vmaddr + s.filesize) return s.fileoff + (vm - s.vmaddr);
  }
  return undefined;
}

export function offsetToVm(t: PatchTarget, off: bigint): bigint | undefined {
  for (const s of t.segments) {
    if (off >= s.fileoff && off < s.fileoff + s.filesize && s.vmsize > 0n) return s.vmaddr + (off - s.fileoff);
  }
  return undefined;
}

/** A contiguous file range to search, with the vmaddr of its first byte. */
export interface Range {
  start: number;
  end: number;
  vmaddr: bigint;
  label: string;
}

/** Ranges of a target matching an optional segment/section scope; `codeOnly` keeps executable ones. */
export function scopeRanges(t: PatchTarget, segment: string | undefined, section: string | undefined, codeOnly: boolean): Range[] {
  const out: Range[] = [];
  for (const s of t.segments) {
    if (segment !== undefined && s.segname !== segment) continue;
    if (section !== undefined || (codeOnly && s.sections.length > 0)) {
      for (const c of s.sections) {
        if (section !== undefined && c.sectname !== section) continue;
        if (codeOnly && section === undefined && !c.code) continue;
        if (c.offset === 0n || c.size === 0n) continue;
        out.push({ start: Number(c.offset), end: Number(c.offset + c.size), vmaddr: c.addr, label: `${c.segname},${c.sectname}` });
      }
      continue;
    }
    if (codeOnly && !s.executable) continue;
    if (s.filesize === 0n) continue;
    out.push({ start: Number(s.fileoff), end: Number(s.fileoff + s.filesize), vmaddr: s.vmaddr, label: s.segname });
  }
  return out;
}
