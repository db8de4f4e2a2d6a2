import { FormatError } from '../errors.js';

// A small DER (ITU-T X.690) reader and writer for Image4 files. Only definite lengths exist in
// DER; every length is checked against the enclosing buffer before use, nesting is bounded, and
// values are subarrays of the input (nothing is copied, so a 500 MiB payload costs nothing).

export const TAG_CLASS_UNIVERSAL = 0;
export const TAG_CLASS_CONTEXT = 2;
export const TAG_CLASS_PRIVATE = 3;

export const UNIVERSAL = {
  BOOLEAN: 1,
  INTEGER: 2,
  OCTET_STRING: 4,
  SEQUENCE: 16,
  SET: 17,
  IA5String: 22,
} as const;

/** Deepest nesting we follow. Image4 manifests nest 6 levels; 32 leaves room and stops recursion bombs. */
export const MAX_DER_DEPTH = 32;

export interface DerNode {
  /** 0 universal, 1 application, 2 context-specific, 3 private. */
  cls: number;
  constructed: boolean;
  /** Tag number (Image4 private tags are FourCCs, up to 2^32 - 1). */
  tag: number;
  /** Offset of the identifier byte within the buffer parsed (plus the caller's base offset). */
  offset: number;
  headerLength: number;
  /** The whole encoding (identifier, length and content): a subarray of the input. */
  raw: Uint8Array;
  /** The content octets: a subarray of the input. */
  value: Uint8Array;
}

function fail(offset: number, detail: string): never {
  throw new FormatError('DER', BigInt(offset), detail);
}

/**
 * Read one TLV at `off` in `buf`, which must end by `end`. `base` is added to offsets in errors and
 * in the returned node, so nested reads report positions in the whole file.
 */
export function readTlv(buf: Uint8Array, off: number, end = buf.length, base = 0): DerNode {
  const start = off;
  if (off >= end) fail(base + off, 'truncated: expected a tag');
  const id = buf[off++]!;
  const cls = id >> 6;
  const constructed = (id & 0x20) !== 0;
  let tag = id & 0x1f;
  if (tag === 0x1f) {
    // High tag number form: base-128 digits, high bit set on all but the last.
    tag = 0;
    for (let n = 0; ; n++) {
      if (off >= end) fail(base + start, 'truncated tag number');
      if (n >= 5) fail(base + start, 'tag number longer than 32 bits');
      const b = buf[off++]!;
      tag = tag * 128 + (b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
  }
  if (off >= end) fail(base + start, 'truncated: expected a length');
  let len = buf[off++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) fail(base + start, 'indefinite length is not allowed in DER');
    if (n > 6) fail(base + start, `length of ${n} bytes is beyond any file`);
    if (off + n > end) fail(base + start, 'truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off++]!;
  }
  if (len > end - off) fail(base + start, `length ${len} runs past the end of its container (${end - off} bytes left)`);
  return {
    cls,
    constructed,
    tag,
    offset: base + start,
    headerLength: off - start,
    raw: buf.subarray(start, off + len),
    value: buf.subarray(off, off + len),
  };
}

/** The children of a constructed node, in order. */
export function children(node: DerNode, depth = 0): DerNode[] {
  if (!node.constructed) fail(node.offset, 'expected a constructed value');
  if (depth > MAX_DER_DEPTH) fail(node.offset, `nesting deeper than ${MAX_DER_DEPTH}`);
  const out: DerNode[] = [];
  const v = node.value;
  const base = node.offset + node.headerLength;
  let off = 0;
  while (off < v.length) {
    const c = readTlv(v, off, v.length, base);
    out.push(c);
    off += c.raw.length;
  }
  return out;
}

export function isUniversal(n: DerNode, tag: number): boolean {
  return n.cls === TAG_CLASS_UNIVERSAL && n.tag === tag;
}

export function expectUniversal(n: DerNode | undefined, tag: number, what: string, parentOffset: number): DerNode {
  if (!n) fail(parentOffset, `missing ${what}`);
  if (!isUniversal(n, tag)) fail(n.offset, `${what}: expected universal tag ${tag}, found class ${n.cls} tag ${n.tag}`);
  return n;
}

export function ia5(n: DerNode): string {
  let s = '';
  for (const b of n.value) s += String.fromCharCode(b);
  return s;
}

/** Two's complement big-endian INTEGER content as a bigint. */
export function integer(n: DerNode): bigint {
  const v = n.value;
  if (v.length === 0) fail(n.offset, 'empty INTEGER');
  if (v.length > 16) fail(n.offset, 'INTEGER longer than 128 bits');
  let x = 0n;
  for (const b of v) x = (x << 8n) | BigInt(b);
  if (v[0]! & 0x80) x -= 1n << BigInt(8 * v.length);
  return x;
}

export function boolean(n: DerNode): boolean {
  if (n.value.length !== 1) fail(n.offset, 'BOOLEAN must be one byte');
  return n.value[0] !== 0;
}

/** FourCC of a 32-bit tag number ("MANB" for 0x4D414E42). */
export function fourcc(tag: number): string {
  return String.fromCharCode((tag >>> 24) & 0xff, (tag >>> 16) & 0xff, (tag >>> 8) & 0xff, tag & 0xff);
}

export function fourccTag(s: string): number {
  if (s.length !== 4) throw new RangeError(`FourCC must be 4 characters: ${JSON.stringify(s)}`);
  return ((s.charCodeAt(0) << 24) | (s.charCodeAt(1) << 16) | (s.charCodeAt(2) << 8) | s.charCodeAt(3)) >>> 0;
}

// ---- writer ---------------------------------------------------------------------------------

/** Identifier and minimal length octets for a value of `length` bytes. */
export function header(cls: number, constructed: boolean, tag: number, length: number): Uint8Array {
  const out: number[] = [];
  const first = (cls << 6) | (constructed ? 0x20 : 0);
  if (tag < 0x1f) {
    out.push(first | tag);
  } else {
    out.push(first | 0x1f);
    const digits: number[] = [];
    let t = tag;
    do {
      digits.unshift(t % 128);
      t = Math.floor(t / 128);
    } while (t > 0);
    for (let i = 0; i < digits.length; i++) out.push(digits[i]! | (i < digits.length - 1 ? 0x80 : 0));
  }
  if (length < 0x80) {
    out.push(length);
  } else {
    const bytes: number[] = [];
    let l = length;
    while (l > 0) {
      bytes.unshift(l % 256);
      l = Math.floor(l / 256);
    }
    out.push(0x80 | bytes.length, ...bytes);
  }
  return Uint8Array.from(out);
}

/**
 * An encoded value kept as a list of chunks, so that building a 500 MiB IM4P does not copy the
 * payload until the final join (or never, when the chunks go straight to a file).
 */
export interface DerChunks {
  chunks: Uint8Array[];
  length: number;
}

export function tlv(cls: number, constructed: boolean, tag: number, content: DerChunks | Uint8Array): DerChunks {
  const c = content instanceof Uint8Array ? { chunks: [content], length: content.length } : content;
  const h = header(cls, constructed, tag, c.length);
  return { chunks: [h, ...c.chunks], length: h.length + c.length };
}

export function concat(parts: (DerChunks | Uint8Array)[]): DerChunks {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (const p of parts) {
    if (p instanceof Uint8Array) {
      chunks.push(p);
      length += p.length;
    } else {
      chunks.push(...p.chunks);
      length += p.length;
    }
  }
  return { chunks, length };
}

export const sequence = (parts: (DerChunks | Uint8Array)[]) => tlv(0, true, UNIVERSAL.SEQUENCE, concat(parts));
export const set = (parts: (DerChunks | Uint8Array)[]) => tlv(0, true, UNIVERSAL.SET, concat(parts));
export const octetString = (v: Uint8Array) => tlv(0, false, UNIVERSAL.OCTET_STRING, v);
export const ia5String = (s: string) => tlv(0, false, UNIVERSAL.IA5String, Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff));
export const booleanValue = (b: boolean) => tlv(0, false, UNIVERSAL.BOOLEAN, Uint8Array.of(b ? 0xff : 0));

export function integerValue(x: bigint | number): DerChunks {
  let v = BigInt(x);
  const bytes: number[] = [];
  // Minimal two's complement: stop when the remaining value is the sign extension of the top bit.
  for (;;) {
    const b = Number(v & 0xffn);
    bytes.unshift(b);
    v >>= 8n;
    if ((v === 0n && (b & 0x80) === 0) || (v === -1n && (b & 0x80) !== 0)) break;
  }
  return tlv(0, false, UNIVERSAL.INTEGER, Uint8Array.from(bytes));
}

export function join(c: DerChunks): Uint8Array {
  if (c.chunks.length === 1) return c.chunks[0]!;
  const out = new Uint8Array(c.length);
  let off = 0;
  for (const ch of c.chunks) {
    out.set(ch, off);
    off += ch.length;
  }
  return out;
}
