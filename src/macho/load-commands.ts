import { FormatError } from '../errors.js';
import {
  ARM_THREAD_STATE64, LC_BUILD_VERSION, LC_DYLD_INFO, LC_DYLD_INFO_ONLY, LC_DYSYMTAB, LC_ENCRYPTION_INFO_64,
  LC_FILESET_ENTRY, LC_ID_DYLIB, LC_ID_DYLINKER, LC_LOAD_DYLIB, LC_LOAD_DYLINKER, LC_LOAD_UPWARD_DYLIB,
  LC_LOAD_WEAK_DYLIB, LC_MAIN, LC_REEXPORT_DYLIB, LC_RPATH, LC_SEGMENT_64, LC_SOURCE_VERSION, LC_SYMTAB,
  LC_THREAD, LC_UNIXTHREAD, LC_UUID, LC_VERSION_MIN_IPHONEOS, LC_VERSION_MIN_MACOSX, LC_VERSION_MIN_TVOS,
  LC_VERSION_MIN_WATCHOS, LINKEDIT_DATA_COMMANDS, LC_LAZY_LOAD_DYLIB, LOAD_COMMAND_NAMES, x86_THREAD_STATE64,
} from './macho-constants.js';
import { cString, fixedString, need, setU32, setU64, u32, u64, writeFixedString } from './macho-bytes.js';

// Typed views of the load commands in mach-o/loader.h. Field names are Apple's. Each view keeps
// `raw` (the command's bytes, zero-copy), so serializing writes the typed fields over a copy of
// raw: unknown commands and padding survive byte for byte, edited fields take effect.

/** struct section_64 (mach-o/loader.h) */
export interface Section64 {
  sectname: string;
  segname: string;
  addr: bigint;
  size: bigint;
  offset: number;
  align: number;
  reloff: number;
  nreloc: number;
  flags: number;
  reserved1: number;
  reserved2: number;
  reserved3: number;
}

/** struct segment_command_64 (mach-o/loader.h) */
export interface Segment64 {
  segname: string;
  vmaddr: bigint;
  vmsize: bigint;
  fileoff: bigint;
  filesize: bigint;
  maxprot: number;
  initprot: number;
  nsects: number;
  flags: number;
  sections: Section64[];
}

interface Base {
  cmd: number;
  cmdsize: number;
  /** Offset of the command in the buffer the Mach-O was parsed from. */
  offset: number;
  raw: Uint8Array;
}

export type LoadCommand =
  | (Base & { kind: 'segment_64'; segment: Segment64 })
  | (Base & { kind: 'symtab'; symoff: number; nsyms: number; stroff: number; strsize: number })
  | (Base & { kind: 'dysymtab' } & DysymtabFields)
  | (Base & { kind: 'dyld_info' } & DyldInfoFields)
  | (Base & { kind: 'linkedit_data'; dataoff: number; datasize: number })
  | (Base & { kind: 'uuid'; uuid: Uint8Array })
  | (Base & { kind: 'build_version'; platform: number; minos: number; sdk: number; tools: { tool: number; version: number }[] })
  | (Base & { kind: 'version_min'; version: number; sdk: number })
  | (Base & { kind: 'entry_point'; entryoff: bigint; stacksize: bigint })
  | (Base & { kind: 'thread'; flavor: number; count: number; pc?: bigint; pcOffset?: number })
  | (Base & { kind: 'fileset_entry'; vmaddr: bigint; fileoff: bigint; entry_id: string; reserved: number })
  | (Base & { kind: 'dylib'; name: string; timestamp: number; current_version: number; compatibility_version: number })
  | (Base & { kind: 'dylinker'; name: string })
  | (Base & { kind: 'rpath'; path: string })
  | (Base & { kind: 'source_version'; version: bigint })
  | (Base & { kind: 'encryption_info_64'; cryptoff: number; cryptsize: number; cryptid: number })
  | (Base & { kind: 'unknown' });

export const DYSYMTAB_FIELDS = [
  'ilocalsym', 'nlocalsym', 'iextdefsym', 'nextdefsym', 'iundefsym', 'nundefsym', 'tocoff', 'ntoc', 'modtaboff',
  'nmodtab', 'extrefsymoff', 'nextrefsyms', 'indirectsymoff', 'nindirectsyms', 'extreloff', 'nextrel', 'locreloff', 'nlocrel',
] as const;
export type DysymtabFields = Record<(typeof DYSYMTAB_FIELDS)[number], number>;

export const DYLD_INFO_FIELDS = [
  'rebase_off', 'rebase_size', 'bind_off', 'bind_size', 'weak_bind_off', 'weak_bind_size',
  'lazy_bind_off', 'lazy_bind_size', 'export_off', 'export_size',
] as const;
export type DyldInfoFields = Record<(typeof DYLD_INFO_FIELDS)[number], number>;

export const SEGMENT_COMMAND_64_SIZE = 72;
export const SECTION_64_SIZE = 80;

export function loadCommandName(cmd: number): string {
  return LOAD_COMMAND_NAMES[cmd] ?? `0x${cmd.toString(16)}`;
}

function lcString(raw: Uint8Array, strOff: number, at: number, what: string): string {
  if (strOff < 8 || strOff >= raw.length) throw new FormatError(what, BigInt(at), `string offset ${strOff} outside the command`);
  return cString(raw, strOff, raw.length, what);
}

/** Parse one load command whose bytes are raw (cmdsize long) found at offset `at`. */
export function parseLoadCommand(raw: Uint8Array, at: number): LoadCommand {
  const cmd = u32(raw, 0);
  const cmdsize = raw.length;
  const base = { cmd, cmdsize, offset: at, raw };
  const name = loadCommandName(cmd);
  const min = (n: number) => {
    if (cmdsize < n) throw new FormatError(name, BigInt(at), `cmdsize ${cmdsize} is smaller than the ${n} bytes of the command`);
  };
  switch (cmd) {
    case LC_SEGMENT_64: {
      min(SEGMENT_COMMAND_64_SIZE);
      const nsects = u32(raw, 64);
      if (SEGMENT_COMMAND_64_SIZE + nsects * SECTION_64_SIZE > cmdsize) {
        throw new FormatError(name, BigInt(at), `${nsects} sections do not fit in cmdsize ${cmdsize}`);
      }
      const sections: Section64[] = [];
      for (let i = 0; i < nsects; i++) {
        const o = SEGMENT_COMMAND_64_SIZE + i * SECTION_64_SIZE;
        sections.push({
          sectname: fixedString(raw, o, 16), segname: fixedString(raw, o + 16, 16), addr: u64(raw, o + 32),
          size: u64(raw, o + 40), offset: u32(raw, o + 48), align: u32(raw, o + 52), reloff: u32(raw, o + 56),
          nreloc: u32(raw, o + 60), flags: u32(raw, o + 64), reserved1: u32(raw, o + 68), reserved2: u32(raw, o + 72),
          reserved3: u32(raw, o + 76),
        });
      }
      return {
        ...base, kind: 'segment_64', segment: {
          segname: fixedString(raw, 8, 16), vmaddr: u64(raw, 24), vmsize: u64(raw, 32), fileoff: u64(raw, 40),
          filesize: u64(raw, 48), maxprot: u32(raw, 56), initprot: u32(raw, 60), nsects, flags: u32(raw, 68), sections,
        },
      };
    }
    case LC_SYMTAB:
      min(24);
      return { ...base, kind: 'symtab', symoff: u32(raw, 8), nsyms: u32(raw, 12), stroff: u32(raw, 16), strsize: u32(raw, 20) };
    case LC_DYSYMTAB: {
      min(80);
      const f = {} as DysymtabFields;
      DYSYMTAB_FIELDS.forEach((k, i) => { f[k] = u32(raw, 8 + 4 * i); });
      return { ...base, kind: 'dysymtab', ...f };
    }
    case LC_DYLD_INFO:
    case LC_DYLD_INFO_ONLY: {
      min(48);
      const f = {} as DyldInfoFields;
      DYLD_INFO_FIELDS.forEach((k, i) => { f[k] = u32(raw, 8 + 4 * i); });
      return { ...base, kind: 'dyld_info', ...f };
    }
    case LC_UUID:
      min(24);
      return { ...base, kind: 'uuid', uuid: raw.subarray(8, 24) };
    case LC_BUILD_VERSION: {
      min(24);
      const ntools = u32(raw, 20);
      if (24 + ntools * 8 > cmdsize) throw new FormatError(name, BigInt(at), `${ntools} tools do not fit in cmdsize ${cmdsize}`);
      const tools = [];
      for (let i = 0; i < ntools; i++) tools.push({ tool: u32(raw, 24 + 8 * i), version: u32(raw, 28 + 8 * i) });
      return { ...base, kind: 'build_version', platform: u32(raw, 8), minos: u32(raw, 12), sdk: u32(raw, 16), tools };
    }
    case LC_VERSION_MIN_MACOSX:
    case LC_VERSION_MIN_IPHONEOS:
    case LC_VERSION_MIN_TVOS:
    case LC_VERSION_MIN_WATCHOS:
      min(16);
      return { ...base, kind: 'version_min', version: u32(raw, 8), sdk: u32(raw, 12) };
    case LC_MAIN:
      min(24);
      return { ...base, kind: 'entry_point', entryoff: u64(raw, 8), stacksize: u64(raw, 16) };
    case LC_UNIXTHREAD:
    case LC_THREAD: {
      min(16);
      const flavor = u32(raw, 8);
      const count = u32(raw, 12);
      // pc lives at a fixed place in the first flavor's state (mach/arm/_structs.h: x[29], fp, lr,
      // sp, pc; mach/i386/_structs.h: rip is the 17th register).
      let pcOffset: number | undefined;
      if (flavor === ARM_THREAD_STATE64 && count >= 66) pcOffset = 16 + 32 * 8;
      if (flavor === x86_THREAD_STATE64 && count >= 34) pcOffset = 16 + 16 * 8;
      if (pcOffset !== undefined && pcOffset + 8 > cmdsize) pcOffset = undefined;
      return { ...base, kind: 'thread', flavor, count, pcOffset, pc: pcOffset !== undefined ? u64(raw, pcOffset) : undefined };
    }
    case LC_FILESET_ENTRY:
      min(32);
      return {
        ...base, kind: 'fileset_entry', vmaddr: u64(raw, 8), fileoff: u64(raw, 16),
        entry_id: lcString(raw, u32(raw, 24), at, 'LC_FILESET_ENTRY entry_id'), reserved: u32(raw, 28),
      };
    case LC_ID_DYLIB:
    case LC_LOAD_DYLIB:
    case LC_LOAD_WEAK_DYLIB:
    case LC_REEXPORT_DYLIB:
    case LC_LAZY_LOAD_DYLIB:
    case LC_LOAD_UPWARD_DYLIB:
      min(24);
      return {
        ...base, kind: 'dylib', name: lcString(raw, u32(raw, 8), at, `${name} name`), timestamp: u32(raw, 12),
        current_version: u32(raw, 16), compatibility_version: u32(raw, 20),
      };
    case LC_LOAD_DYLINKER:
    case LC_ID_DYLINKER:
      min(12);
      return { ...base, kind: 'dylinker', name: lcString(raw, u32(raw, 8), at, `${name} name`) };
    case LC_RPATH:
      min(12);
      return { ...base, kind: 'rpath', path: lcString(raw, u32(raw, 8), at, 'LC_RPATH path') };
    case LC_SOURCE_VERSION:
      min(16);
      return { ...base, kind: 'source_version', version: u64(raw, 8) };
    case LC_ENCRYPTION_INFO_64:
      min(20);
      return { ...base, kind: 'encryption_info_64', cryptoff: u32(raw, 8), cryptsize: u32(raw, 12), cryptid: u32(raw, 16) };
    default:
      if (LINKEDIT_DATA_COMMANDS.has(cmd)) {
        min(16);
        return { ...base, kind: 'linkedit_data', dataoff: u32(raw, 8), datasize: u32(raw, 12) };
      }
      return { ...base, kind: 'unknown' };
  }
}

/** The command's bytes with every typed numeric field written back (strings are read-only views). */
export function serializeLoadCommand(lc: LoadCommand): Uint8Array {
  const out = lc.raw.slice();
  setU32(out, 0, lc.cmd);
  setU32(out, 4, lc.cmdsize);
  switch (lc.kind) {
    case 'segment_64': {
      const s = lc.segment;
      writeFixedString(out, 8, 16, s.segname);
      setU64(out, 24, s.vmaddr); setU64(out, 32, s.vmsize); setU64(out, 40, s.fileoff); setU64(out, 48, s.filesize);
      setU32(out, 56, s.maxprot); setU32(out, 60, s.initprot); setU32(out, 64, s.nsects); setU32(out, 68, s.flags);
      s.sections.forEach((c, i) => {
        const o = SEGMENT_COMMAND_64_SIZE + i * SECTION_64_SIZE;
        writeFixedString(out, o, 16, c.sectname); writeFixedString(out, o + 16, 16, c.segname);
        setU64(out, o + 32, c.addr); setU64(out, o + 40, c.size);
        [c.offset, c.align, c.reloff, c.nreloc, c.flags, c.reserved1, c.reserved2, c.reserved3]
          .forEach((v, k) => setU32(out, o + 48 + 4 * k, v));
      });
      break;
    }
    case 'symtab':
      setU32(out, 8, lc.symoff); setU32(out, 12, lc.nsyms); setU32(out, 16, lc.stroff); setU32(out, 20, lc.strsize);
      break;
    case 'dysymtab':
      DYSYMTAB_FIELDS.forEach((k, i) => setU32(out, 8 + 4 * i, lc[k]));
      break;
    case 'dyld_info':
      DYLD_INFO_FIELDS.forEach((k, i) => setU32(out, 8 + 4 * i, lc[k]));
      break;
    case 'linkedit_data':
      setU32(out, 8, lc.dataoff); setU32(out, 12, lc.datasize);
      break;
    case 'uuid':
      out.set(lc.uuid, 8);
      break;
    case 'build_version':
      setU32(out, 8, lc.platform); setU32(out, 12, lc.minos); setU32(out, 16, lc.sdk);
      break;
    case 'version_min':
      setU32(out, 8, lc.version); setU32(out, 12, lc.sdk);
      break;
    case 'entry_point':
      setU64(out, 8, lc.entryoff); setU64(out, 16, lc.stacksize);
      break;
    case 'thread':
      if (lc.pcOffset !== undefined && lc.pc !== undefined) setU64(out, lc.pcOffset, lc.pc);
      break;
    case 'fileset_entry':
      setU64(out, 8, lc.vmaddr); setU64(out, 16, lc.fileoff); setU32(out, 28, lc.reserved);
      break;
    case 'source_version':
      setU64(out, 8, lc.version);
      break;
    case 'encryption_info_64':
      setU32(out, 8, lc.cryptoff); setU32(out, 12, lc.cryptsize); setU32(out, 16, lc.cryptid);
      break;
    default:
      break;
  }
  return out;
}

/** Bounds of a command's data in the file (for commands pointing into __LINKEDIT or elsewhere). */
export function checkRange(fileLength: number, structure: string, at: number, off: number | bigint, size: number | bigint): void {
  const o = BigInt(off);
  const s = BigInt(size);
  if (s !== 0n && (o + s > BigInt(fileLength))) {
    throw new FormatError(structure, BigInt(at), `data at 0x${o.toString(16)} + 0x${s.toString(16)} runs past the end of the file (0x${fileLength.toString(16)})`);
  }
}

export { need };
