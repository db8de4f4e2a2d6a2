import { FormatError } from '../errors.js';
import { cString, sleb, uleb } from './macho-bytes.js';
import { commandOf, type MachO } from './macho.js';
import { LC_ID_DYLIB } from './macho-constants.js';

// LC_DYLD_INFO(_ONLY) rebase and bind opcode streams, decoded to flat lists.
// Opcode values and semantics: mach-o/loader.h (REBASE_OPCODE_*, BIND_OPCODE_*).

export const REBASE_TYPE_POINTER = 1;
export const REBASE_TYPE_TEXT_ABSOLUTE32 = 2;
export const REBASE_TYPE_TEXT_PCREL32 = 3;
export const REBASE_OPCODE_MASK = 0xf0;
export const REBASE_IMMEDIATE_MASK = 0x0f;
export const REBASE_OPCODE_DONE = 0x00;
export const REBASE_OPCODE_SET_TYPE_IMM = 0x10;
export const REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB = 0x20;
export const REBASE_OPCODE_ADD_ADDR_ULEB = 0x30;
export const REBASE_OPCODE_ADD_ADDR_IMM_SCALED = 0x40;
export const REBASE_OPCODE_DO_REBASE_IMM_TIMES = 0x50;
export const REBASE_OPCODE_DO_REBASE_ULEB_TIMES = 0x60;
export const REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB = 0x70;
export const REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB = 0x80;

export const BIND_TYPE_POINTER = 1;
export const BIND_TYPE_TEXT_ABSOLUTE32 = 2;
export const BIND_TYPE_TEXT_PCREL32 = 3;
export const BIND_SPECIAL_DYLIB_SELF = 0;
export const BIND_SPECIAL_DYLIB_MAIN_EXECUTABLE = -1;
export const BIND_SPECIAL_DYLIB_FLAT_LOOKUP = -2;
export const BIND_SPECIAL_DYLIB_WEAK_LOOKUP = -3;
export const BIND_SYMBOL_FLAGS_WEAK_IMPORT = 0x1;
export const BIND_SYMBOL_FLAGS_NON_WEAK_DEFINITION = 0x8;
export const BIND_OPCODE_MASK = 0xf0;
export const BIND_IMMEDIATE_MASK = 0x0f;
export const BIND_OPCODE_DONE = 0x00;
export const BIND_OPCODE_SET_DYLIB_ORDINAL_IMM = 0x10;
export const BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB = 0x20;
export const BIND_OPCODE_SET_DYLIB_SPECIAL_IMM = 0x30;
export const BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM = 0x40;
export const BIND_OPCODE_SET_TYPE_IMM = 0x50;
export const BIND_OPCODE_SET_ADDEND_SLEB = 0x60;
export const BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB = 0x70;
export const BIND_OPCODE_ADD_ADDR_ULEB = 0x80;
export const BIND_OPCODE_DO_BIND = 0x90;
export const BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB = 0xa0;
export const BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED = 0xb0;
export const BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB = 0xc0;
export const BIND_OPCODE_THREADED = 0xd0;
export const BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB = 0x00;
export const BIND_SUBOPCODE_THREADED_APPLY = 0x01;

export interface Rebase {
  segIndex: number;
  segOffset: bigint;
  address: bigint;
  type: number;
}

export interface Bind {
  segIndex: number;
  segOffset: bigint;
  address: bigint;
  type: number;
  /** Library ordinal, or one of BIND_SPECIAL_DYLIB_*. */
  ordinal: number;
  symbol: string;
  flags: number;
  addend: bigint;
}

export type BindKind = 'bind' | 'weak_bind' | 'lazy_bind';

export interface ThreadedBinds {
  /** The ordinal table built by the opcodes (symbols that chain entries refer to by index). */
  table: Omit<Bind, 'address' | 'segIndex' | 'segOffset'>[];
  /** Addresses where a chain of arm64e pointers starts (BIND_SUBOPCODE_THREADED_APPLY). */
  starts: bigint[];
}

function dyldInfo(m: MachO) {
  return commandOf(m, 'dyld_info');
}

/** A stream cannot describe more fixups than the file has pointer slots (bounds fuzzed counts). */
function entryLimit(m: MachO): number {
  return Math.floor(m.bytes.length / 4) + 1024;
}

class SegCursor {
  segIndex = -1;
  offset = 0n;
  constructor(private readonly m: MachO, private readonly structure: string) {}
  set(seg: number, off: bigint, at: number): void {
    if (seg >= this.m.segments.length) throw new FormatError(this.structure, BigInt(at), `segment index ${seg} out of range`);
    this.segIndex = seg;
    this.offset = off;
  }
  /** Address of the current slot, checked to lie inside its segment. */
  address(at: number): bigint {
    const s = this.m.segments[this.segIndex];
    if (!s) throw new FormatError(this.structure, BigInt(at), 'fixup before any segment was set');
    if (this.offset < 0n || this.offset + 8n > s.vmsize) {
      throw new FormatError(this.structure, BigInt(at), `offset 0x${this.offset.toString(16)} outside segment ${s.segname} (vmsize 0x${s.vmsize.toString(16)})`);
    }
    return s.vmaddr + this.offset;
  }
}

export function decodeRebases(m: MachO): Rebase[] {
  const lc = dyldInfo(m);
  if (!lc || lc.rebase_size === 0) return [];
  const b = m.bytes;
  const end = lc.rebase_off + lc.rebase_size;
  const structure = 'rebase opcodes';
  const out: Rebase[] = [];
  const limit = entryLimit(m);
  const cur = new SegCursor(m, structure);
  let type = 0;
  let p = lc.rebase_off;
  const emit = (at: number) => {
    if (out.length >= limit) throw new FormatError(structure, BigInt(at), 'more rebases than the file has pointer slots');
    out.push({ segIndex: cur.segIndex, segOffset: cur.offset, address: cur.address(at), type });
  };
  while (p < end) {
    const at = p;
    const byte = b[p++]!;
    const imm = byte & REBASE_IMMEDIATE_MASK;
    let v: bigint;
    let n: bigint;
    switch (byte & REBASE_OPCODE_MASK) {
      case REBASE_OPCODE_DONE:
        return out;
      case REBASE_OPCODE_SET_TYPE_IMM:
        type = imm;
        break;
      case REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB:
        [v, p] = uleb(b, p, end, structure);
        cur.set(imm, v, at);
        break;
      case REBASE_OPCODE_ADD_ADDR_ULEB:
        [v, p] = uleb(b, p, end, structure);
        cur.offset = BigInt.asUintN(64, cur.offset + v);
        break;
      case REBASE_OPCODE_ADD_ADDR_IMM_SCALED:
        cur.offset += BigInt(imm) * 8n;
        break;
      case REBASE_OPCODE_DO_REBASE_IMM_TIMES:
        for (let i = 0; i < imm; i++) { emit(at); cur.offset += 8n; }
        break;
      case REBASE_OPCODE_DO_REBASE_ULEB_TIMES:
        [n, p] = uleb(b, p, end, structure);
        for (let i = 0n; i < n; i++) { emit(at); cur.offset += 8n; }
        break;
      case REBASE_OPCODE_DO_REBASE_ADD_ADDR_ULEB:
        emit(at);
        [v, p] = uleb(b, p, end, structure);
        cur.offset = BigInt.asUintN(64, cur.offset + v + 8n);
        break;
      case REBASE_OPCODE_DO_REBASE_ULEB_TIMES_SKIPPING_ULEB: {
        [n, p] = uleb(b, p, end, structure);
        let skip: bigint;
        [skip, p] = uleb(b, p, end, structure);
        for (let i = 0n; i < n; i++) { emit(at); cur.offset = BigInt.asUintN(64, cur.offset + skip + 8n); }
        break;
      }
      default:
        throw new FormatError(structure, BigInt(at), `bad rebase opcode 0x${byte.toString(16)}`);
    }
  }
  return out;
}

/** Decode one of the three bind streams. For 'bind' the THREADED opcodes are collected into `threaded`. */
export function decodeBinds(m: MachO, kind: BindKind = 'bind', threaded?: ThreadedBinds): Bind[] {
  const lc = dyldInfo(m);
  if (!lc) return [];
  const [start, size] = kind === 'bind' ? [lc.bind_off, lc.bind_size] : kind === 'weak_bind' ? [lc.weak_bind_off, lc.weak_bind_size] : [lc.lazy_bind_off, lc.lazy_bind_size];
  if (size === 0) return [];
  const b = m.bytes;
  const end = start + size;
  const structure = `${kind.replace('_', ' ')} opcodes`;
  const out: Bind[] = [];
  const limit = entryLimit(m);
  const cur = new SegCursor(m, structure);
  let type = kind === 'lazy_bind' ? BIND_TYPE_POINTER : 0;
  let ordinal = 0;
  let symbol = '';
  let flags = 0;
  let addend = 0n;
  let inThreaded = false;
  const table = threaded ?? { table: [], starts: [] };
  let p = start;
  const emit = (at: number) => {
    if (out.length + table.table.length >= limit) throw new FormatError(structure, BigInt(at), 'more binds than the file has pointer slots');
    if (inThreaded) {
      // Threaded binds (arm64e before chained fixups): DO_BIND fills the ordinal table that the
      // pointer chains started by THREADED_APPLY refer to.
      table.table.push({ type, ordinal, symbol, flags, addend });
      return;
    }
    out.push({ segIndex: cur.segIndex, segOffset: cur.offset, address: cur.address(at), type, ordinal, symbol, flags, addend });
  };
  while (p < end) {
    const at = p;
    const byte = b[p++]!;
    const imm = byte & BIND_IMMEDIATE_MASK;
    let v: bigint;
    switch (byte & BIND_OPCODE_MASK) {
      case BIND_OPCODE_DONE:
        // The lazy stream separates entries with DONE; the others end there.
        if (kind !== 'lazy_bind') return out;
        break;
      case BIND_OPCODE_SET_DYLIB_ORDINAL_IMM:
        ordinal = imm;
        break;
      case BIND_OPCODE_SET_DYLIB_ORDINAL_ULEB:
        [v, p] = uleb(b, p, end, structure);
        ordinal = Number(BigInt.asIntN(32, v));
        break;
      case BIND_OPCODE_SET_DYLIB_SPECIAL_IMM:
        ordinal = imm === 0 ? 0 : (imm | 0xfffffff0) | 0;
        break;
      case BIND_OPCODE_SET_SYMBOL_TRAILING_FLAGS_IMM: {
        flags = imm;
        symbol = cString(b, p, end, `${structure} symbol name`);
        while (b[p] !== 0) p++;
        p++;
        break;
      }
      case BIND_OPCODE_SET_TYPE_IMM:
        type = imm;
        break;
      case BIND_OPCODE_SET_ADDEND_SLEB:
        [addend, p] = sleb(b, p, end, structure);
        break;
      case BIND_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB:
        [v, p] = uleb(b, p, end, structure);
        cur.set(imm, v, at);
        break;
      case BIND_OPCODE_ADD_ADDR_ULEB:
        [v, p] = uleb(b, p, end, structure);
        cur.offset = BigInt.asUintN(64, cur.offset + v);
        break;
      case BIND_OPCODE_DO_BIND:
        emit(at);
        if (!inThreaded) cur.offset += 8n;
        break;
      case BIND_OPCODE_DO_BIND_ADD_ADDR_ULEB:
        emit(at);
        [v, p] = uleb(b, p, end, structure);
        cur.offset = BigInt.asUintN(64, cur.offset + v + 8n);
        break;
      case BIND_OPCODE_DO_BIND_ADD_ADDR_IMM_SCALED:
        emit(at);
        cur.offset += BigInt(imm) * 8n + 8n;
        break;
      case BIND_OPCODE_DO_BIND_ULEB_TIMES_SKIPPING_ULEB: {
        let n: bigint;
        let skip: bigint;
        [n, p] = uleb(b, p, end, structure);
        [skip, p] = uleb(b, p, end, structure);
        for (let i = 0n; i < n; i++) { emit(at); cur.offset = BigInt.asUintN(64, cur.offset + skip + 8n); }
        break;
      }
      case BIND_OPCODE_THREADED:
        if (imm === BIND_SUBOPCODE_THREADED_SET_BIND_ORDINAL_TABLE_SIZE_ULEB) {
          [v, p] = uleb(b, p, end, structure);
          if (v > BigInt(limit)) throw new FormatError(structure, BigInt(at), `threaded ordinal table of ${v} entries is absurd`);
          inThreaded = true;
        } else if (imm === BIND_SUBOPCODE_THREADED_APPLY) {
          table.starts.push(cur.address(at));
        } else {
          throw new FormatError(structure, BigInt(at), `bad threaded bind subopcode ${imm}`);
        }
        break;
      default:
        throw new FormatError(structure, BigInt(at), `bad bind opcode 0x${byte.toString(16)}`);
    }
  }
  return out;
}

export function ordinalName(m: MachO, ordinal: number): string {
  if (ordinal === BIND_SPECIAL_DYLIB_SELF) return 'this-image';
  if (ordinal === BIND_SPECIAL_DYLIB_MAIN_EXECUTABLE) return 'main-executable';
  if (ordinal === BIND_SPECIAL_DYLIB_FLAT_LOOKUP) return 'flat-namespace';
  if (ordinal === BIND_SPECIAL_DYLIB_WEAK_LOOKUP) return 'weak';
  // Ordinals count the libraries the image loads (LC_LOAD_*DYLIB, LC_REEXPORT_DYLIB), not its own LC_ID_DYLIB.
  const dylibs = m.commands.filter((c) => c.kind === 'dylib' && c.cmd !== LC_ID_DYLIB);
  const d = dylibs[ordinal - 1];
  return d && d.kind === 'dylib' ? d.name : `ordinal ${ordinal}`;
}
