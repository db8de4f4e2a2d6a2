// Constants of the LZFSE format, as fixed by Apple's open-source reference codec (lzfse_internal.h,
// lzfse_encode_tables.h): block magics, symbol/state counts, and the base value and extra-bit count
// of each L (literal run), M (match length) and D (match distance) symbol.

export const MAGIC_END = 0x24787662; // "bvx$"
export const MAGIC_RAW = 0x2d787662; // "bvx-"
export const MAGIC_V1 = 0x31787662; // "bvx1"
export const MAGIC_V2 = 0x32787662; // "bvx2"
export const MAGIC_LZVN = 0x6e787662; // "bvxn"

export const L_SYMBOLS = 20;
export const M_SYMBOLS = 20;
export const D_SYMBOLS = 64;
export const LITERAL_SYMBOLS = 256;
export const L_STATES = 64;
export const M_STATES = 64;
export const D_STATES = 256;
export const LITERAL_STATES = 1024;
export const MATCHES_PER_BLOCK = 10000;
export const LITERALS_PER_BLOCK = 4 * MATCHES_PER_BLOCK;
/** Total number of frequencies in a block header: L, M, D, then literal tables. */
export const FREQ_COUNT = L_SYMBOLS + M_SYMBOLS + D_SYMBOLS + LITERAL_SYMBOLS;
/** sizeof(lzfse_compressed_block_header_v1): 770 bytes of fields, padded to 4-byte alignment. */
export const V1_HEADER_SIZE = 772;
/** The fixed part of a v2 header: magic, n_raw_bytes, three packed 64-bit fields. */
export const V2_FIXED_HEADER_SIZE = 32;

export const L_EXTRA_BITS = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 5, 8);
export const L_BASE_VALUE = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 28, 60);
export const M_EXTRA_BITS = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 8, 11);
export const M_BASE_VALUE = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 56, 312);
export const D_EXTRA_BITS = Uint8Array.of(
  0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7,
  8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,
);
export const D_BASE_VALUE = Int32Array.of(
  0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 36, 44, 52, 60, 76, 92, 108, 124, 156, 188, 220,
  252, 316, 380, 444, 508, 636, 764, 892, 1020, 1276, 1532, 1788, 2044, 2556, 3068, 3580, 4092,
  5116, 6140, 7164, 8188, 10236, 12284, 14332, 16380, 20476, 24572, 28668, 32764, 40956, 49148,
  57340, 65532, 81916, 98300, 114684, 131068, 163836, 196604, 229372,
);

/** Largest encodable values: the last base plus all extra bits set. */
export const MAX_L_VALUE = 60 + 255;
export const MAX_M_VALUE = 312 + 2047;
export const MAX_D_VALUE = 229372 + 32767;

// Frequencies in a v2 header use a fixed prefix code read from the low bits: the low 5 bits pick
// the code length (2, 3, 5, 8 or 14 bits) and, for short codes, the value.
export const FREQ_NBITS = Int8Array.of(
  2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14,
  2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14,
);
export const FREQ_VALUE = Int8Array.of(
  0, 2, 1, 4, 0, 3, 1, -1, 0, 2, 1, 5, 0, 3, 1, -1,
  0, 2, 1, 6, 0, 3, 1, -1, 0, 2, 1, 7, 0, 3, 1, -1,
);

/** Symbol of a value, given a table of ascending base values. */
function symbolTable(base: Int32Array, max: number): Uint8Array {
  const t = new Uint8Array(max + 1);
  let s = 0;
  for (let v = 0; v <= max; v++) {
    while (s + 1 < base.length && base[s + 1]! <= v) s++;
    t[v] = s;
  }
  return t;
}

export const L_SYMBOL_OF = symbolTable(L_BASE_VALUE, MAX_L_VALUE);
export const M_SYMBOL_OF = symbolTable(M_BASE_VALUE, MAX_M_VALUE);

/** D symbol of a distance (distances go to 262139, so a table would be 256 KiB: compute instead). */
export function dSymbol(d: number): number {
  // Symbols 4g..4g+3 share g extra bits and start at 4 * (2^g - 1); so (d + 4) >> 2 lies in
  // [2^g, 2^(g+1)), and the symbol within the group is the next two bits.
  const g = 31 - Math.clz32((d + 4) >>> 2);
  return 4 * g + ((d + 4) >>> g) - 4;
}
