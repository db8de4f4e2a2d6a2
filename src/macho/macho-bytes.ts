import { FormatError } from '../errors.js';

// Little-endian bounds-checked reads over a Uint8Array, shared by the Mach-O parsers. Every read
// that would leave the buffer becomes a FormatError naming the structure being read.

export function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function need(b: Uint8Array, off: number, len: number, structure: string): void {
  if (!(off >= 0 && len >= 0 && off + len <= b.length)) {
    throw new FormatError(structure, BigInt(Math.max(0, off)), `needs ${len} bytes but the data ends at 0x${b.length.toString(16)}`);
  }
}

export function u32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

export function u16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

export function u64(b: Uint8Array, off: number): bigint {
  return BigInt(u32(b, off)) | (BigInt(u32(b, off + 4)) << 32n);
}

export function setU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

export function setU64(b: Uint8Array, off: number, v: bigint): void {
  setU32(b, off, Number(v & 0xffffffffn));
  setU32(b, off + 4, Number((v >> 32n) & 0xffffffffn));
}

export function u32be(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function u64be(b: Uint8Array, off: number): bigint {
  return (BigInt(u32be(b, off)) << 32n) | BigInt(u32be(b, off + 4));
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/** A fixed-size, NUL-padded name such as segname[16]. */
export function fixedString(b: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return latin1.decode(b.subarray(off, end));
}

export function writeFixedString(b: Uint8Array, off: number, len: number, s: string): void {
  b.fill(0, off, off + len);
  for (let i = 0; i < Math.min(len, s.length); i++) b[off + i] = s.charCodeAt(i) & 0xff;
}

/** A NUL-terminated UTF-8 string starting at off and ending before limit; error if no NUL. */
export function cString(b: Uint8Array, off: number, limit: number, structure: string): string {
  const end = Math.min(limit, b.length);
  if (off < 0 || off >= end) throw new FormatError(structure, BigInt(Math.max(0, off)), 'string offset outside its table');
  const nul = b.indexOf(0, off);
  if (nul < 0 || nul >= end) throw new FormatError(structure, BigInt(off), 'string without a terminating NUL');
  return utf8.decode(b.subarray(off, nul));
}

/** ULEB128 at off; returns value and the next offset. Bounded to 10 bytes (64 bits). */
export function uleb(b: Uint8Array, off: number, end: number, structure: string): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (off >= end) throw new FormatError(structure, BigInt(off), 'ULEB128 runs past the end of its data');
    const byte = b[off++]!;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result & 0xffffffffffffffffn, off];
    shift += 7n;
  }
  throw new FormatError(structure, BigInt(off), 'ULEB128 longer than 10 bytes');
}

/** SLEB128 at off, as a signed bigint. */
export function sleb(b: Uint8Array, off: number, end: number, structure: string): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (off >= end) throw new FormatError(structure, BigInt(off), 'SLEB128 runs past the end of its data');
    const byte = b[off++]!;
    result |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) {
      if (byte & 0x40) result -= 1n << shift;
      return [BigInt.asIntN(64, result), off];
    }
  }
  throw new FormatError(structure, BigInt(off), 'SLEB128 longer than 10 bytes');
}

export function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

export function alignUpBig(v: bigint, a: bigint): bigint {
  return ((v + a - 1n) / a) * a;
}

/** Encoders used by the writers (fileset builder, extract). */
export function encodeUleb(v: bigint): number[] {
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return out;
}

/** Growable little-endian byte sink for writers. */
export class ByteSink {
  private buf = new Uint8Array(256);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.length));
    this.buf = nb;
  }
  u8(v: number): this { this.grow(1); this.buf[this.length++] = v & 0xff; return this; }
  u16(v: number): this { this.grow(2); this.buf[this.length++] = v & 0xff; this.buf[this.length++] = (v >>> 8) & 0xff; return this; }
  u32(v: number): this { this.grow(4); setU32(this.buf, this.length, v); this.length += 4; return this; }
  u64(v: bigint): this { this.grow(8); setU64(this.buf, this.length, v); this.length += 8; return this; }
  bytes(b: ArrayLike<number>): this { this.grow(b.length); this.buf.set(b, this.length); this.length += b.length; return this; }
  fixed(s: string, len: number): this { this.grow(len); writeFixedString(this.buf, this.length, len, s); this.length += len; return this; }
  cstr(s: string): this { return this.bytes(new TextEncoder().encode(s)).u8(0); }
  zeros(n: number): this { this.grow(n); this.buf.fill(0, this.length, this.length + n); this.length += n; return this; }
  align(a: number): this { return this.zeros(alignUp(this.length, a) - this.length); }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}
