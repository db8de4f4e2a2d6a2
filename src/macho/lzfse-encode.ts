import {
  MAGIC_END, MAGIC_RAW, MAGIC_V2, MAGIC_LZVN,
  L_SYMBOLS, M_SYMBOLS, D_SYMBOLS, LITERAL_SYMBOLS, L_STATES, M_STATES, D_STATES, LITERAL_STATES,
  MATCHES_PER_BLOCK, LITERALS_PER_BLOCK, FREQ_COUNT, V2_FIXED_HEADER_SIZE,
  L_EXTRA_BITS, L_BASE_VALUE, M_EXTRA_BITS, M_BASE_VALUE, D_EXTRA_BITS, D_BASE_VALUE,
  MAX_L_VALUE, MAX_M_VALUE, MAX_D_VALUE, L_SYMBOL_OF, M_SYMBOL_OF, dSymbol,
} from './lzfse-tables.js';
import { findSequences, type MatchParams } from './lzfse-match.js';
import { lzvnEncode } from './lzvn-encode.js';

// LZFSE encoder. Inputs under 4096 bytes become one LZVN block (bvxn), larger ones LZ77 + FSE
// blocks (bvx2) of at most 10000 matches and 40000 literals each, as Apple's reference does;
// any block that would not shrink is stored raw (bvx-). Matches may reach into earlier blocks.
// The stream layout follows the reference exactly (literal payload, then an L/M/D payload that
// starts with 8 zero bytes; both FSE bit streams written forwards and read backwards), so
// Apple's decoder reads it. Note: iBoot only boots kernelcaches compressed by Apple's own
// encoder; this one is for the VMM and for tools.

/** Below this size the reference switches to LZVN (LZFSE_ENCODE_LZVN_THRESHOLD). */
export const LZVN_THRESHOLD = 4096;

const PARAMS: MatchParams = { maxDistance: MAX_D_VALUE, niceLength: 32, lazyBelow: 16, maxLength: 100 * MAX_M_VALUE };

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** The stream of one raw (bvx-) block: what every LZFSE decoder accepts for incompressible data. */
export function lzfseEncodeRaw(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length + 12);
  put32(out, 0, MAGIC_RAW);
  put32(out, 4, src.length);
  out.set(src, 8);
  put32(out, 8 + src.length, MAGIC_END);
  return out;
}

// ---- FSE ---------------------------------------------------------------------------------------

/**
 * Scale symbol counts to frequencies summing to exactly `nstates`, every used symbol keeping at
 * least 1. The excess or shortfall goes to the largest frequencies, where it costs least.
 */
export function normalizeFreq(counts: Uint32Array, nstates: number, freq: Uint16Array, fOff: number): void {
  const n = counts.length;
  let total = 0;
  for (let i = 0; i < n; i++) total += counts[i]!;
  for (let i = 0; i < n; i++) freq[fOff + i] = 0;
  if (total === 0) return;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const c = counts[i]!;
    if (c === 0) continue;
    const f = Math.max(1, Math.round((c * nstates) / total));
    freq[fOff + i] = f;
    sum += f;
  }
  while (sum !== nstates) {
    // Adjust the symbol whose code length changes least relative to its count: the largest.
    let best = -1;
    for (let i = 0; i < n; i++) {
      const f = freq[fOff + i]!;
      if (f === 0 || (sum > nstates && f === 1)) continue;
      if (best < 0 || f > freq[fOff + best]!) best = i;
    }
    const step = sum > nstates ? Math.max(-(sum - nstates), -(freq[fOff + best]! - 1)) : nstates - sum;
    freq[fOff + best] = freq[fOff + best]! + step;
    sum += step;
  }
}

/**
 * Encoder table for one alphabet: for symbol s, states at or above s0 emit k bits, the others
 * k - 1; the new state is delta + (state >> bits). This inverts the decoder's table (see
 * lzfse-decode.ts): the decoder's states for s are offset .. offset + f - 1.
 */
class FseEncoder {
  s0: Int32Array; k: Int32Array; delta0: Int32Array; delta1: Int32Array;
  constructor(readonly nsym: number) {
    this.s0 = new Int32Array(nsym); this.k = new Int32Array(nsym);
    this.delta0 = new Int32Array(nsym); this.delta1 = new Int32Array(nsym);
  }
  init(freq: Uint16Array, fOff: number, nstates: number): void {
    const nClz = Math.clz32(nstates);
    let offset = 0;
    for (let s = 0; s < this.nsym; s++) {
      const f = freq[fOff + s]!;
      if (f === 0) continue;
      const k = Math.clz32(f) - nClz;
      this.s0[s] = (f << k) - nstates;
      this.k[s] = k;
      this.delta0[s] = offset - f + (nstates >> k);
      this.delta1[s] = k > 0 ? offset - f + (nstates >> (k - 1)) : 0;
      offset += f;
    }
  }
}

/** Forward LSB-first bit writer into a byte array. */
class BitWriter {
  acc = 0;
  nbits = 0;
  constructor(public buf: Uint8Array, public pos: number) {}
  push(n: number, v: number): void {
    this.acc |= v << this.nbits;
    this.nbits += n;
    while (this.nbits >= 8) {
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.nbits -= 8;
    }
  }
  /** Write the last partial byte; returns the stream's bit count field, in [-7, 0]. */
  finish(): number {
    if (this.nbits === 0) return 0;
    this.buf[this.pos++] = this.acc & 0xff;
    const r = this.nbits - 8;
    this.acc = 0;
    this.nbits = 0;
    return r;
  }
}

// ---- blocks ------------------------------------------------------------------------------------

/** Frequency code (lzfse-tables FREQ_NBITS/FREQ_VALUE inverted): [bits, nbits] for 0..7. */
const SMALL_FREQ_CODE: [number, number][] = [[0, 2], [2, 2], [1, 3], [5, 3], [3, 5], [11, 5], [19, 5], [27, 5]];

/** Largest a bvx2 block can get: full header, 10 bits per literal, 54 bits per match, padding. */
const MAX_BLOCK_BYTES = V2_FIXED_HEADER_SIZE + 2 * FREQ_COUNT + Math.ceil((LITERALS_PER_BLOCK * 10) / 8) + 16 + Math.ceil((MATCHES_PER_BLOCK * 54) / 8) + 16;

class BlockEncoder {
  lits = new Uint8Array(LITERALS_PER_BLOCK + 4);
  nLit = 0;
  lv = new Int32Array(MATCHES_PER_BLOCK);
  mv = new Int32Array(MATCHES_PER_BLOCK);
  dv = new Int32Array(MATCHES_PER_BLOCK);
  nMatch = 0;
  rawBytes = 0;
  lCount = new Uint32Array(L_SYMBOLS); mCount = new Uint32Array(M_SYMBOLS);
  dCount = new Uint32Array(D_SYMBOLS); litCount = new Uint32Array(LITERAL_SYMBOLS);
  freq = new Uint16Array(FREQ_COUNT);
  lEnc = new FseEncoder(L_SYMBOLS); mEnc = new FseEncoder(M_SYMBOLS);
  dEnc = new FseEncoder(D_SYMBOLS); litEnc = new FseEncoder(LITERAL_SYMBOLS);
  scratch = new Uint8Array(MAX_BLOCK_BYTES);

  /** Would one more L/M/D with L literals overflow the block? (Same margins as the reference.) */
  full(L: number): boolean {
    return this.nMatch + 1 + 8 > MATCHES_PER_BLOCK || this.nLit + L + 16 > LITERALS_PER_BLOCK;
  }

  push(src: Uint8Array, litStart: number, L: number, M: number, D: number): void {
    const n = this.nMatch++;
    this.lv[n] = L;
    this.mv[n] = M;
    this.dv[n] = D;
    const lits = this.lits;
    let o = this.nLit;
    for (let i = litStart, e = litStart + L; i < e; i++) lits[o++] = src[i]!;
    this.nLit = o;
    this.rawBytes += L + M;
  }

  reset(): void {
    this.nLit = 0;
    this.nMatch = 0;
    this.rawBytes = 0;
  }

  /** Encode the pending L/M/D triples and literals as a bvx2 block in `scratch`; returns its size. */
  encode(): number {
    const { lits, lv, mv, dv, nMatch, freq } = this;
    // Literals go in four interleaved streams: pad their count to a multiple of 4.
    let nLit = this.nLit;
    while (nLit & 3) lits[nLit++] = 0;
    this.lCount.fill(0); this.mCount.fill(0); this.dCount.fill(0); this.litCount.fill(0);
    // A distance equal to the previous one is sent as 0 ("repeat"), as the decoder expects.
    const dsym = new Uint8Array(nMatch);
    let dPrev = 0;
    for (let i = 0; i < nMatch; i++) {
      this.lCount[L_SYMBOL_OF[lv[i]!]!]!++;
      this.mCount[M_SYMBOL_OF[mv[i]!]!]!++;
      let d = dv[i]!;
      if (d === dPrev) d = 0;
      else dPrev = d;
      dv[i] = d;
      dsym[i] = dSymbol(d);
      this.dCount[dsym[i]!]!++;
    }
    for (let i = 0; i < nLit; i++) this.litCount[lits[i]!]!++;
    normalizeFreq(this.lCount, L_STATES, freq, 0);
    normalizeFreq(this.mCount, M_STATES, freq, L_SYMBOLS);
    normalizeFreq(this.dCount, D_STATES, freq, L_SYMBOLS + M_SYMBOLS);
    normalizeFreq(this.litCount, LITERAL_STATES, freq, L_SYMBOLS + M_SYMBOLS + D_SYMBOLS);

    const out = this.scratch;
    // Header: frequency table first (its size fixes where the payloads start).
    const fw = new BitWriter(out, V2_FIXED_HEADER_SIZE);
    for (let i = 0; i < FREQ_COUNT; i++) {
      const v = freq[i]!;
      if (v < 8) fw.push(SMALL_FREQ_CODE[v]![1], SMALL_FREQ_CODE[v]![0]);
      else if (v < 24) fw.push(8, 7 | ((v - 8) << 4));
      else fw.push(14, 15 | ((v - 24) << 4));
    }
    fw.finish();
    const headerSize = fw.pos;

    this.lEnc.init(freq, 0, L_STATES);
    this.mEnc.init(freq, L_SYMBOLS, M_STATES);
    this.dEnc.init(freq, L_SYMBOLS + M_SYMBOLS, D_STATES);
    this.litEnc.init(freq, L_SYMBOLS + M_SYMBOLS + D_SYMBOLS, LITERAL_STATES);

    const ls = [0, 0, 0, 0];
    // The bit writer is inlined below (acc, nb, pos): at most 15 bits per push, and 2 bytes go
    // out whenever 16 are pending, so acc never exceeds 31 bits.
    let acc = 0;
    let nb = 0;
    let pos = headerSize;

    // Literals, last first, so that the decoder (reading backwards) gets the first first.
    {
      const { s0, k, delta0, delta1 } = this.litEnc;
      let st0 = 0, st1 = 0, st2 = 0, st3 = 0;
      let sym = 0, n = 0, s = 0;
      for (let i = nLit - 4; i >= 0; i -= 4) {
        sym = lits[i + 3]!; s = st3; n = s >= s0[sym]! ? k[sym]! : k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; st3 = (s >= s0[sym]! ? delta0[sym]! : delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
        sym = lits[i + 2]!; s = st2; n = s >= s0[sym]! ? k[sym]! : k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; st2 = (s >= s0[sym]! ? delta0[sym]! : delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
        sym = lits[i + 1]!; s = st1; n = s >= s0[sym]! ? k[sym]! : k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; st1 = (s >= s0[sym]! ? delta0[sym]! : delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
        sym = lits[i]!; s = st0; n = s >= s0[sym]! ? k[sym]! : k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; st0 = (s >= s0[sym]! ? delta0[sym]! : delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
      }
      ls[0] = st0; ls[1] = st1; ls[2] = st2; ls[3] = st3;
    }
    // Last partial bytes; the stream's bit count field says how much of the top byte is unused.
    while (nb >= 8) { out[pos++] = acc & 0xff; acc >>>= 8; nb -= 8; }
    let literalBits = 0;
    if (nb > 0) { out[pos++] = acc & 0xff; literalBits = nb - 8; }
    const literalPayload = pos - headerSize;

    // L, M, D: 8 zero bytes first, then triples last first (D, M, L: the decoder reads L first).
    const lmdStart = pos;
    for (let i = 0; i < 8; i++) out[pos++] = 0;
    acc = 0;
    nb = 0;
    let lState = 0, mState = 0, dState = 0;
    {
      const dE = this.dEnc, mE = this.mEnc, lE = this.lEnc;
      let sym = 0, n = 0, s = 0;
      for (let i = nMatch - 1; i >= 0; i--) {
        sym = dsym[i]!;
        n = D_EXTRA_BITS[sym]!; acc |= (dv[i]! - D_BASE_VALUE[sym]!) << nb; nb += n;
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
        s = dState; n = s >= dE.s0[sym]! ? dE.k[sym]! : dE.k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; dState = (s >= dE.s0[sym]! ? dE.delta0[sym]! : dE.delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }

        sym = M_SYMBOL_OF[mv[i]!]!;
        n = M_EXTRA_BITS[sym]!; acc |= (mv[i]! - M_BASE_VALUE[sym]!) << nb; nb += n;
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
        s = mState; n = s >= mE.s0[sym]! ? mE.k[sym]! : mE.k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; mState = (s >= mE.s0[sym]! ? mE.delta0[sym]! : mE.delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }

        sym = L_SYMBOL_OF[lv[i]!]!;
        n = L_EXTRA_BITS[sym]!; acc |= (lv[i]! - L_BASE_VALUE[sym]!) << nb; nb += n;
        s = lState; n = s >= lE.s0[sym]! ? lE.k[sym]! : lE.k[sym]! - 1;
        acc |= (s & ((1 << n) - 1)) << nb; nb += n; lState = (s >= lE.s0[sym]! ? lE.delta0[sym]! : lE.delta1[sym]!) + (s >> n);
        if (nb >= 16) { out[pos++] = acc & 0xff; out[pos++] = (acc >>> 8) & 0xff; acc >>>= 16; nb -= 16; }
      }
    }
    while (nb >= 8) { out[pos++] = acc & 0xff; acc >>>= 8; nb -= 8; }
    let lmdBits = 0;
    if (nb > 0) { out[pos++] = acc & 0xff; lmdBits = nb - 8; }
    const lmdPayload = pos - lmdStart;

    // Fixed header fields, packed as in the reference's lzfse_compressed_block_header_v2.
    put32(out, 0, MAGIC_V2);
    put32(out, 4, this.rawBytes);
    put32(out, 8, nLit | ((literalPayload & 0xfff) << 20));
    put32(out, 12, (literalPayload >>> 12) | (nMatch << 8) | ((literalBits + 7) << 28));
    put32(out, 16, ls[0]! | (ls[1]! << 10) | (ls[2]! << 20) | ((ls[3]! & 3) << 30));
    put32(out, 20, (ls[3]! >>> 2) | (lmdPayload << 8) | ((lmdBits + 7) << 28));
    put32(out, 24, headerSize);
    put32(out, 28, lState | (mState << 10) | (dState << 20));
    return pos;
  }
}

/** Growable output. */
class Out {
  buf: Uint8Array;
  pos = 0;
  constructor(cap: number) { this.buf = new Uint8Array(cap); }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  write(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  u32(v: number): void {
    this.ensure(4);
    put32(this.buf, this.pos, v);
    this.pos += 4;
  }
}

function encodeLzvnBlock(src: Uint8Array): Uint8Array {
  const payload = lzvnEncode(src);
  if (payload.length + 12 >= src.length + 8) return lzfseEncodeRaw(src);
  const out = new Uint8Array(12 + payload.length + 4);
  put32(out, 0, MAGIC_LZVN);
  put32(out, 4, src.length);
  put32(out, 8, payload.length);
  out.set(payload, 12);
  put32(out, 12 + payload.length, MAGIC_END);
  return out;
}

export interface LzfseEncodeOptions {
  /** Called now and then with the number of input bytes processed. */
  onProgress?: (done: number) => void;
}

export function lzfseEncode(src: Uint8Array, opts: LzfseEncodeOptions = {}): Uint8Array {
  if (src.length < 8) return lzfseEncodeRaw(src);
  if (src.length < LZVN_THRESHOLD) return encodeLzvnBlock(src);
  const out = new Out(Math.ceil(src.length / 2) + 1024);
  const blk = new BlockEncoder();
  let blockStart = 0; // source offset of the pending block's first byte
  let lastD = 0; // distance in force in the pending block (0: none yet)
  let rawHeader = -1; // output offset of the last block's header when it was bvx-
  let rawLength = 0;
  const flush = () => {
    if (blk.rawBytes === 0) return;
    const size = blk.encode();
    if (size < blk.rawBytes + 8) {
      out.write(blk.scratch.subarray(0, size));
      rawHeader = -1;
    } else if (rawHeader >= 0 && rawLength + blk.rawBytes <= 0xffffffff) {
      // Consecutive incompressible blocks share one bvx- header.
      rawLength += blk.rawBytes;
      put32(out.buf, rawHeader + 4, rawLength);
      out.write(src.subarray(blockStart, blockStart + blk.rawBytes));
    } else {
      rawHeader = out.pos;
      rawLength = blk.rawBytes;
      out.u32(MAGIC_RAW);
      out.u32(blk.rawBytes);
      out.write(src.subarray(blockStart, blockStart + blk.rawBytes));
    }
    blockStart += blk.rawBytes;
    blk.reset();
    lastD = 0;
    opts.onProgress?.(blockStart);
  };
  const lmd = (litStart: number, L: number, M: number, D: number) => {
    if (blk.full(L)) flush();
    blk.push(src, litStart, L, M, D);
    if (M) lastD = D;
  };
  findSequences(src, PARAMS, (litStart, L, M, D) => {
    // Literal runs longer than an L value can say go out as literal-only triples; their
    // distance must still be valid, so they repeat the block's last one (or use 1).
    while (L > MAX_L_VALUE) {
      lmd(litStart, MAX_L_VALUE, 0, lastD || 1);
      litStart += MAX_L_VALUE;
      L -= MAX_L_VALUE;
    }
    if (M === 0) {
      if (L > 0) lmd(litStart, L, 0, lastD || 1);
      return;
    }
    while (M > MAX_M_VALUE) {
      lmd(litStart, L, MAX_M_VALUE, D);
      litStart += L;
      L = 0;
      M -= MAX_M_VALUE;
    }
    lmd(litStart, L, M, D);
  });
  flush();
  out.u32(MAGIC_END);
  return out.buf.slice(0, out.pos);
}
