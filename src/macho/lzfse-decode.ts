import { FormatError } from '../errors.js';
import {
  MAGIC_END, MAGIC_RAW, MAGIC_V1, MAGIC_V2, MAGIC_LZVN,
  L_SYMBOLS, M_SYMBOLS, D_SYMBOLS, LITERAL_SYMBOLS, L_STATES, M_STATES, D_STATES, LITERAL_STATES,
  MATCHES_PER_BLOCK, LITERALS_PER_BLOCK, FREQ_COUNT, V1_HEADER_SIZE, V2_FIXED_HEADER_SIZE,
  L_EXTRA_BITS, L_BASE_VALUE, M_EXTRA_BITS, M_BASE_VALUE, D_EXTRA_BITS, D_BASE_VALUE, MAX_M_VALUE,
  FREQ_NBITS, FREQ_VALUE,
} from './lzfse-tables.js';
import { lzvnDecodeInto } from './lzvn-decode.js';

// LZFSE decoder: a stream of blocks, each starting with a 4-byte magic (little-endian "bvx?"):
//   bvx-  raw bytes            bvxn  LZVN-compressed       bvx$  end of stream
//   bvx1  LZ77 + FSE entropy coding, plain header   bvx2  the same with a packed header
// In bvx1/bvx2 blocks, literals are coded by four interleaved FSE streams and the
// (literal run L, match length M, distance D) triples by three more; each FSE bit stream is read
// backwards from its end. Facts from Apple's open-source reference (lzfse_decode_base.c).

/** Default ceiling on the decoded size: 4 GiB - 1, the largest typed array Node 20 allocates. */
export const LZFSE_DEFAULT_MAX_OUTPUT = 2 ** 32 - 1;

export interface LzfseBlock {
  /** "bvx-", "bvxn", "bvx1", "bvx2". */
  kind: string;
  offset: number;
  /** Decoded bytes the header declares. */
  rawBytes: number;
  /** Bytes of the block in the stream, header included. */
  encodedBytes: number;
}

export interface LzfseScan {
  blocks: LzfseBlock[];
  decodedSize: number;
  /** Offset just past the bvx$ marker: anything after it is not part of the stream. */
  streamEnd: number;
}

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function bad(offset: number, detail: string): never {
  throw new FormatError('LZFSE stream', BigInt(offset), detail);
}

const KIND: Record<number, string> = { [MAGIC_RAW]: 'bvx-', [MAGIC_LZVN]: 'bvxn', [MAGIC_V1]: 'bvx1', [MAGIC_V2]: 'bvx2' };

/** Does `b` start with an LZFSE block magic? */
export function isLzfse(b: Uint8Array): boolean {
  return b.length >= 4 && (u32(b, 0) === MAGIC_END || KIND[u32(b, 0)] !== undefined);
}

/**
 * Walk the block headers without decoding: every block must lie inside `src`, and every declared
 * size must be one the block's structure can produce (that bounds what a lying header can make
 * us allocate). Throws on a missing end marker.
 */
export function lzfseScan(src: Uint8Array, maxOutput = LZFSE_DEFAULT_MAX_OUTPUT): LzfseScan {
  const blocks: LzfseBlock[] = [];
  let off = 0;
  let total = 0;
  for (;;) {
    if (off + 4 > src.length) bad(off, 'truncated: no end-of-stream block (bvx$)');
    const magic = u32(src, off);
    if (magic === MAGIC_END) return { blocks, decodedSize: total, streamEnd: off + 4 };
    const kind = KIND[magic];
    if (!kind) bad(off, `unknown block magic 0x${magic.toString(16).padStart(8, '0')}`);
    let size: number;
    let raw: number;
    let limit: number; // the most output this block's encoded form can express
    if (magic === MAGIC_RAW) {
      if (off + 8 > src.length) bad(off, 'truncated bvx- header');
      raw = u32(src, off + 4);
      size = 8 + raw;
      limit = raw;
    } else if (magic === MAGIC_LZVN) {
      if (off + 12 > src.length) bad(off, 'truncated bvxn header');
      raw = u32(src, off + 4);
      const payload = u32(src, off + 8);
      size = 12 + payload;
      // The most expansive LZVN opcode turns 2 bytes into 271 (lrg_m).
      limit = Math.ceil(payload / 2) * 271;
    } else {
      const h = magic === MAGIC_V2 ? readV2Header(src, off) : readV1Header(src, off);
      raw = h.rawBytes;
      size = h.headerSize + h.literalPayloadBytes + h.lmdPayloadBytes;
      // Each match copies at most 15 bytes without extra bits (M symbols 0-15), and at most 215
      // bytes per extra bit read (the best is symbol 19: 312 + 2047 with 11 bits); literals
      // come from the literal stream. So a block cannot produce more than this, whatever its
      // header claims: a 32-byte header with empty payloads stays under 200 KB.
      limit = h.literals + h.matches * 15 + Math.min(h.matches * MAX_M_VALUE, 215 * 8 * h.lmdPayloadBytes);
    }
    if (off + size > src.length) bad(off, `${kind} block of ${size} bytes runs past the end of the input`);
    if (raw > limit) bad(off, `${kind} block declares ${raw} decoded bytes, more than its ${size} encoded bytes can hold`);
    total += raw;
    if (total > maxOutput) bad(off, `decoded size exceeds the limit of ${maxOutput} bytes`);
    blocks.push({ kind, offset: off, rawBytes: raw, encodedBytes: size });
    off += size;
  }
}

/** A bvx1/bvx2 block header, with the v2 packing undone (the reference's v1 layout). */
export interface BlockHeader {
  rawBytes: number;
  headerSize: number;
  literals: number;
  matches: number;
  literalPayloadBytes: number;
  lmdPayloadBytes: number;
  literalBits: number;
  lmdBits: number;
  literalState: [number, number, number, number];
  lState: number;
  mState: number;
  dState: number;
  /** L, M, D then literal frequencies (FREQ_COUNT values). */
  freq: Uint16Array;
}

function readV2Header(src: Uint8Array, off: number): BlockHeader {
  if (off + V2_FIXED_HEADER_SIZE > src.length) bad(off, 'truncated bvx2 header');
  const lo0 = u32(src, off + 8), hi0 = u32(src, off + 12);
  const lo1 = u32(src, off + 16), hi1 = u32(src, off + 20);
  const lo2 = u32(src, off + 24), hi2 = u32(src, off + 28);
  const headerSize = lo2;
  if (headerSize < V2_FIXED_HEADER_SIZE || off + headerSize > src.length) bad(off, `bvx2 header size ${headerSize} is out of range`);
  const h: BlockHeader = {
    rawBytes: u32(src, off + 4),
    headerSize,
    literals: lo0 & 0xfffff,
    literalPayloadBytes: (lo0 >>> 20) | ((hi0 & 0xff) << 12),
    matches: (hi0 >>> 8) & 0xfffff,
    literalBits: ((hi0 >>> 28) & 7) - 7,
    literalState: [lo1 & 0x3ff, (lo1 >>> 10) & 0x3ff, (lo1 >>> 20) & 0x3ff, (lo1 >>> 30) | ((hi1 & 0xff) << 2)],
    lmdPayloadBytes: (hi1 >>> 8) & 0xfffff,
    lmdBits: ((hi1 >>> 28) & 7) - 7,
    lState: hi2 & 0x3ff,
    mState: (hi2 >>> 10) & 0x3ff,
    dState: (hi2 >>> 20) & 0x3ff,
    freq: new Uint16Array(FREQ_COUNT),
  };
  // Frequencies: a prefix code read LSB first; a header with no table bytes means all zero.
  let p = off + V2_FIXED_HEADER_SIZE;
  const end = off + headerSize;
  if (p < end) {
    let acc = 0;
    let nbits = 0;
    for (let i = 0; i < FREQ_COUNT; i++) {
      while (p < end && nbits + 8 <= 32) {
        acc = (acc | (src[p++]! << nbits)) >>> 0;
        nbits += 8;
      }
      const b = acc & 31;
      const n = FREQ_NBITS[b]!;
      if (n > nbits) bad(off, 'bvx2 frequency table is truncated');
      h.freq[i] = n === 8 ? 8 + ((acc >>> 4) & 0xf) : n === 14 ? 24 + ((acc >>> 4) & 0x3ff) : FREQ_VALUE[b]!;
      acc >>>= n;
      nbits -= n;
    }
    if (nbits >= 8 || p !== end) bad(off, 'bvx2 frequency table does not end at the header size');
  }
  checkHeader(h, off);
  return h;
}

function readV1Header(src: Uint8Array, off: number): BlockHeader {
  if (off + V1_HEADER_SIZE > src.length) bad(off, 'truncated bvx1 header');
  const u16 = (o: number) => src[off + o]! | (src[off + o + 1]! << 8);
  const i32 = (o: number) => u32(src, off + o) | 0;
  const h: BlockHeader = {
    rawBytes: u32(src, off + 4),
    headerSize: V1_HEADER_SIZE,
    literals: u32(src, off + 12),
    matches: u32(src, off + 16),
    literalPayloadBytes: u32(src, off + 20),
    lmdPayloadBytes: u32(src, off + 24),
    literalBits: i32(28),
    literalState: [u16(32), u16(34), u16(36), u16(38)],
    lmdBits: i32(40),
    lState: u16(44),
    mState: u16(46),
    dState: u16(48),
    freq: new Uint16Array(FREQ_COUNT),
  };
  for (let i = 0; i < FREQ_COUNT; i++) h.freq[i] = u16(50 + 2 * i);
  if (u32(src, off + 8) !== h.literalPayloadBytes + h.lmdPayloadBytes) bad(off, 'bvx1 payload size does not match its parts');
  checkHeader(h, off);
  return h;
}

function checkHeader(h: BlockHeader, off: number): void {
  if (h.literals > LITERALS_PER_BLOCK) bad(off, `${h.literals} literals exceed the block limit of ${LITERALS_PER_BLOCK}`);
  if (h.matches > MATCHES_PER_BLOCK) bad(off, `${h.matches} matches exceed the block limit of ${MATCHES_PER_BLOCK}`);
  if (h.literalBits < -7 || h.literalBits > 0 || h.lmdBits < -7 || h.lmdBits > 0) bad(off, 'bit count outside [-7, 0]');
  if (h.literalState.some((s) => s >= LITERAL_STATES)) bad(off, 'literal state out of range');
  if (h.lState >= L_STATES || h.mState >= M_STATES || h.dState >= D_STATES) bad(off, 'L/M/D state out of range');
  const sums: [number, number, number][] = [[0, L_SYMBOLS, L_STATES], [L_SYMBOLS, M_SYMBOLS, M_STATES],
    [L_SYMBOLS + M_SYMBOLS, D_SYMBOLS, D_STATES], [L_SYMBOLS + M_SYMBOLS + D_SYMBOLS, LITERAL_SYMBOLS, LITERAL_STATES]];
  for (const [start, n, states] of sums) {
    let sum = 0;
    for (let i = start; i < start + n; i++) sum += h.freq[i]!;
    if (sum > states) bad(off, `frequency table sums to ${sum}, more than ${states} states`);
  }
}

// ---- FSE decoding tables -----------------------------------------------------------------------
// Symbol s with normalized frequency f owns f consecutive states. With k = clz(f) - clz(nstates)
// (so nstates <= f << k < 2 * nstates), its first j0 = (2 * nstates >> k) - f states read k bits
// and the rest k - 1 bits; the next state is delta + those bits.

/** Literal table: entry = delta << 16 | symbol << 8 | nbits. */
function literalTable(freq: Uint16Array, start: number, t: Int32Array): void {
  t.fill(0);
  const nClz = Math.clz32(LITERAL_STATES);
  let pos = 0;
  for (let sym = 0; sym < LITERAL_SYMBOLS; sym++) {
    const f = freq[start + sym]!;
    if (f === 0) continue;
    const k = Math.clz32(f) - nClz;
    const j0 = ((2 * LITERAL_STATES) >> k) - f;
    for (let j = 0; j < f; j++) {
      const e = j < j0
        ? ((((f + j) << k) - LITERAL_STATES) << 16) | (sym << 8) | k
        : (((j - j0) << (k - 1)) << 16) | (sym << 8) | (k - 1);
      t[pos++] = e;
    }
  }
}

/** Value table: info = delta << 16 | valueBits << 8 | totalBits; base = the symbol's base value. */
function valueTable(freq: Uint16Array, start: number, nsym: number, nstates: number,
  extra: Uint8Array, baseValue: Int32Array, info: Int32Array, base: Int32Array): void {
  info.fill(0);
  base.fill(0);
  const nClz = Math.clz32(nstates);
  let pos = 0;
  for (let sym = 0; sym < nsym; sym++) {
    const f = freq[start + sym]!;
    if (f === 0) continue;
    const k = Math.clz32(f) - nClz;
    const j0 = ((2 * nstates) >> k) - f;
    const vb = extra[sym]!;
    for (let j = 0; j < f; j++) {
      info[pos] = j < j0
        ? ((((f + j) << k) - nstates) << 16) | (vb << 8) | (k + vb)
        : (((j - j0) << (k - 1)) << 16) | (vb << 8) | (k - 1 + vb);
      base[pos++] = baseValue[sym]!;
    }
  }
}

/**
 * Bytes past the end of the output (and of the literal buffer) that copies may overrun: literal
 * runs and matches are copied 8 bytes at a time, and a copy may write up to 7 bytes past its end,
 * which later output overwrites.
 */
const SLACK = 16;

/** Reusable per-decoder scratch (tables and the literal buffer of one block). */
class Scratch {
  lit = new Int32Array(LITERAL_STATES);
  lInfo = new Int32Array(L_STATES); lBase = new Int32Array(L_STATES);
  mInfo = new Int32Array(M_STATES); mBase = new Int32Array(M_STATES);
  dInfo = new Int32Array(D_STATES); dBase = new Int32Array(D_STATES);
  literals = new Uint8Array(LITERALS_PER_BLOCK + SLACK);
  litView = new DataView(this.literals.buffer);
  /** A DataView of the stream being decoded. */
  srcView?: DataView;
}

/**
 * Decode a bvx1/bvx2 block whose header is at `off` into out[outPos, outPos + rawBytes).
 * Returns the offset of the next block.
 */
/** The header of the bvx1 or bvx2 block at `off`, checked. */
export function readBlockHeader(src: Uint8Array, off: number): BlockHeader {
  const magic = u32(src, off);
  if (magic === MAGIC_V2) return readV2Header(src, off);
  if (magic === MAGIC_V1) return readV1Header(src, off);
  bad(off, 'not a bvx1 or bvx2 block');
}

function decodeCompressedBlock(src: Uint8Array, off: number, h: BlockHeader, out: Uint8Array, outView: DataView, outPos: number, sc: Scratch): number {
  literalTable(h.freq, L_SYMBOLS + M_SYMBOLS + D_SYMBOLS, sc.lit);
  valueTable(h.freq, 0, L_SYMBOLS, L_STATES, L_EXTRA_BITS, L_BASE_VALUE, sc.lInfo, sc.lBase);
  valueTable(h.freq, L_SYMBOLS, M_SYMBOLS, M_STATES, M_EXTRA_BITS, M_BASE_VALUE, sc.mInfo, sc.mBase);
  valueTable(h.freq, L_SYMBOLS + M_SYMBOLS, D_SYMBOLS, D_STATES, D_EXTRA_BITS, D_BASE_VALUE, sc.dInfo, sc.dBase);

  const litStart = off + h.headerSize;
  const lmdStart = litStart + h.literalPayloadBytes;
  const lmdEnd = lmdStart + h.lmdPayloadBytes;

  // Each FSE bit stream is a little-endian integer read from its top bit down: `bp` is the
  // position just above the next unread bit, starting 8 * end + bits (bits in [-7, 0] leaves the
  // top bits of the last byte unused). A read of k <= 25 bits is one unaligned 32-bit load at
  // bp >>> 3, shifted by bp & 7. The 4 bytes may reach past the payload (masked off; the scan
  // guarantees at least the 4-byte end marker follows) or below its start: consuming bits below
  // the start is an error, checked after each group of reads (one group reads at most 54 bits,
  // so the load stays inside the block header).
  const sv = sc.srcView!;
  const lits = sc.literals;
  const nLit = (h.literals + 3) & ~3;
  {
    const tab = sc.lit;
    const litEnd = litStart + h.literalPayloadBytes;
    let bp = 8 * litEnd + h.literalBits;
    if (litEnd > litStart ? src[litEnd - 1]! >>> (8 + h.literalBits) : h.literalBits !== 0) bad(litEnd - 1, 'literal stream: nonzero padding bits');
    const minBp = 8 * litStart;
    let s0 = h.literalState[0], s1 = h.literalState[1], s2 = h.literalState[2], s3 = h.literalState[3];
    let e = 0;
    let k = 0;
    for (let i = 0; i < nLit; i += 4) {
      e = tab[s0]!; k = e & 0xff; bp -= k; lits[i] = e >>> 8;
      s0 = (e >>> 16) + ((sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << k) - 1));
      e = tab[s1]!; k = e & 0xff; bp -= k; lits[i + 1] = e >>> 8;
      s1 = (e >>> 16) + ((sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << k) - 1));
      e = tab[s2]!; k = e & 0xff; bp -= k; lits[i + 2] = e >>> 8;
      s2 = (e >>> 16) + ((sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << k) - 1));
      e = tab[s3]!; k = e & 0xff; bp -= k; lits[i + 3] = e >>> 8;
      s3 = (e >>> 16) + ((sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << k) - 1));
      if (bp < minBp) bad(litStart, 'literal stream reads past its start');
    }
  }

  // L, M, D triples, then execute each: copy L literals, then M bytes from D back.
  const lInfo = sc.lInfo, lBase = sc.lBase, mInfo = sc.mInfo, mBase = sc.mBase, dInfo = sc.dInfo, dBase = sc.dBase;
  let bp = 8 * lmdEnd + h.lmdBits;
  if (lmdEnd > lmdStart ? src[lmdEnd - 1]! >>> (8 + h.lmdBits) : h.lmdBits !== 0) bad(lmdEnd - 1, 'L/M/D stream: nonzero padding bits');
  const minBp = 8 * lmdStart;
  let ls = h.lState, ms = h.mState, ds = h.dState;
  let D = -1;
  let lp = 0;
  let op = outPos;
  const outEnd = outPos + h.rawBytes;
  for (let n = h.matches; n > 0; n--) {
    // Each value: totalBits = state bits + extra bits; the state bits are the high part.
    let e = lInfo[ls]!;
    let tb = e & 0xff;
    bp -= tb;
    let x = (sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << tb) - 1);
    let vb = (e >>> 8) & 0xff;
    const L = lBase[ls]! + (x & ((1 << vb) - 1));
    ls = (e >>> 16) + (x >>> vb);

    e = mInfo[ms]!;
    tb = e & 0xff;
    bp -= tb;
    x = (sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << tb) - 1);
    vb = (e >>> 8) & 0xff;
    const M = mBase[ms]! + (x & ((1 << vb) - 1));
    ms = (e >>> 16) + (x >>> vb);

    e = dInfo[ds]!;
    tb = e & 0xff;
    bp -= tb;
    x = (sv.getUint32(bp >>> 3, true) >>> (bp & 7)) & ((1 << tb) - 1);
    vb = (e >>> 8) & 0xff;
    const newD = dBase[ds]! + (x & ((1 << vb) - 1));
    ds = (e >>> 16) + (x >>> vb);
    if (newD !== 0) D = newD;
    if (bp < minBp) bad(lmdStart, 'L/M/D stream reads past its start');

    if (lp + L > nLit) bad(lmdStart, `literal run of ${L} goes past the block's ${h.literals} literals`);
    if (op + L + M > outEnd) bad(off, `block decodes to more than its declared ${h.rawBytes} bytes`);
    // Literals: 8 bytes at a time through DataViews (unaligned 32-bit loads and stores).
    {
      const litView = sc.litView;
      let i = 0;
      for (; i < L; i += 8) {
        outView.setUint32(op + i, litView.getUint32(lp + i, true), true);
        outView.setUint32(op + i + 4, litView.getUint32(lp + i + 4, true), true);
      }
      op += L;
      lp += L;
    }
    if (M !== 0) {
      if (D <= 0 || D > op) bad(lmdStart, `match distance ${D} reaches before the start of the output`);
      let from = op - D;
      if (D >= 8) {
        // Chunks of 8 never overlap their own source when D >= 8; later chunks may read what
        // earlier ones wrote, exactly as a byte-by-byte copy would.
        const e2 = op + M;
        while (op < e2) {
          outView.setUint32(op, outView.getUint32(from, true), true);
          outView.setUint32(op + 4, outView.getUint32(from + 4, true), true);
          op += 8;
          from += 8;
        }
        op = e2;
      } else if (D === 1 && M > 16) {
        out.fill(out[from]!, op, op + M);
        op += M;
      } else {
        const e2 = op + M;
        while (op < e2) out[op++] = out[from++]!;
      }
    }
  }
  if (op !== outEnd) bad(off, `block decodes to ${op - outPos} bytes, its header says ${h.rawBytes}`);
  return lmdEnd;
}

/**
 * Decode a whole LZFSE stream. The output is allocated once, at the size the block headers
 * declare (after lzfseScan has checked each declaration against its block's structure), and
 * every block must decode to exactly its declared size.
 */
export function lzfseDecode(src: Uint8Array, opts: { maxOutput?: number } = {}): Uint8Array {
  const scan = lzfseScan(src, opts.maxOutput ?? LZFSE_DEFAULT_MAX_OUTPUT);
  // Every output byte is written before it is returned (each block must decode to exactly its
  // declared size, else we throw), so the buffer needs no zero-filling; only the slack does.
  const buf = Buffer.allocUnsafeSlow(scan.decodedSize + SLACK);
  buf.fill(0, scan.decodedSize);
  const out = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  const outView = new DataView(buf.buffer, buf.byteOffset, buf.length);
  let sc: Scratch | undefined;
  let op = 0;
  for (const b of scan.blocks) {
    const off = b.offset;
    if (b.kind === 'bvx-') {
      out.set(src.subarray(off + 8, off + 8 + b.rawBytes), op);
    } else if (b.kind === 'bvxn') {
      const r = lzvnDecodeInto(src, off + 12, off + b.encodedBytes, out, op, op + b.rawBytes);
      if (r.dstEnd !== op + b.rawBytes) bad(off, `bvxn block decodes to ${r.dstEnd - op} bytes, its header says ${b.rawBytes}`);
      if (r.srcEnd !== off + b.encodedBytes) bad(off, 'bvxn block has bytes after its end-of-stream opcode');
    } else {
      const h = b.kind === 'bvx2' ? readV2Header(src, off) : readV1Header(src, off);
      if (!sc) {
        sc = new Scratch();
        sc.srcView = new DataView(src.buffer, src.byteOffset, src.length);
      }
      decodeCompressedBlock(src, off, h, out, outView, op, sc);
    }
    op += b.rawBytes;
  }
  return out.subarray(0, scan.decodedSize);
}
