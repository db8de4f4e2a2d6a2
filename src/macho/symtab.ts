import { FormatError } from '../errors.js';
import { u16, u32, u64 } from './macho-bytes.js';
import { commandOf, type MachO } from './macho.js';

// LC_SYMTAB nlist_64 entries and their string table (mach-o/nlist.h, mach-o/loader.h).

// mach-o/nlist.h
export const N_STAB = 0xe0;
export const N_PEXT = 0x10;
export const N_TYPE = 0x0e;
export const N_EXT = 0x01;
export const N_UNDF = 0x0;
export const N_ABS = 0x2;
export const N_SECT = 0xe;
export const N_PBUD = 0xc;
export const N_INDR = 0xa;
export const NLIST_64_SIZE = 16;

/** struct nlist_64 (mach-o/nlist.h) with its name resolved. */
export interface Nlist64 {
  name: string;
  n_strx: number;
  n_type: number;
  n_sect: number;
  n_desc: number;
  n_value: bigint;
}

const utf8 = new TextDecoder('utf-8');

export function parseSymtab(m: MachO): Nlist64[] {
  const lc = commandOf(m, 'symtab');
  if (!lc) return [];
  const b = m.bytes;
  const out: Nlist64[] = new Array(lc.nsyms);
  const strEnd = lc.stroff + lc.strsize;
  for (let i = 0; i < lc.nsyms; i++) {
    const o = lc.symoff + i * NLIST_64_SIZE;
    const n_strx = u32(b, o);
    let name = '';
    if (n_strx !== 0) {
      const s = lc.stroff + n_strx;
      if (n_strx >= lc.strsize) throw new FormatError('nlist_64', BigInt(o), `n_strx ${n_strx} outside the string table (${lc.strsize} bytes)`);
      const nul = b.indexOf(0, s);
      if (nul < 0 || nul >= strEnd) throw new FormatError('string table', BigInt(s), 'symbol name without a terminating NUL');
      name = utf8.decode(b.subarray(s, nul));
    }
    out[i] = { name, n_strx, n_type: b[o + 4]!, n_sect: b[o + 5]!, n_desc: u16(b, o + 6), n_value: u64(b, o + 8) };
  }
  return out;
}

export function isDefinedExternal(s: Nlist64): boolean {
  return (s.n_type & N_STAB) === 0 && (s.n_type & N_EXT) !== 0 && (s.n_type & N_TYPE) === N_SECT;
}

export function isUndefined(s: Nlist64): boolean {
  return (s.n_type & N_STAB) === 0 && (s.n_type & N_TYPE) === N_UNDF;
}

/** The indirect symbol table of LC_DYSYMTAB (indices into the symbol table). */
export function indirectSymbols(m: MachO): Uint32Array {
  const d = commandOf(m, 'dysymtab');
  if (!d || d.nindirectsyms === 0) return new Uint32Array(0);
  const out = new Uint32Array(d.nindirectsyms);
  for (let i = 0; i < d.nindirectsyms; i++) out[i] = u32(m.bytes, d.indirectsymoff + 4 * i);
  return out;
}
