import { FormatError } from '../errors.js';
import { lzssDecode, lzssEncode } from './lzss.js';

// complzss: the container of LZSS kernelcaches (iOS <= 13, older macOS prelinkedkernels).
// A 0x180-byte big-endian header: "comp" "lzss", Adler-32 of the decompressed data,
// uncompressed size, compressed size, u32 1, zero padding; the stream at 0x180. Apple's files may
// carry more data after the stream (e.g. a monitor Mach-O), which we keep and write back.

export const COMPLZSS_HEADER_SIZE = 0x180;

export interface Complzss {
  adler32: number;
  uncompressedSize: number;
  compressedSize: number;
  version: number;
  /** The reserved header bytes 0x18..0x180 (zero in every known file), kept for re-packing. */
  reserved: Uint8Array;
  stream: Uint8Array;
  /** Bytes after the compressed stream. */
  trailing: Uint8Array;
}

const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

export function isComplzss(b: Uint8Array): boolean {
  return b.length >= 8 && be32(b, 0) === 0x636f6d70 && be32(b, 4) === 0x6c7a7373; // "comp" "lzss"
}

/** Adler-32 (RFC 1950), processed in runs short enough that the sums cannot overflow. */
export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  const n = data.length;
  for (let i = 0; i < n; ) {
    const end = Math.min(n, i + 3800);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

export function parseComplzss(buf: Uint8Array): Complzss {
  if (buf.length < COMPLZSS_HEADER_SIZE) throw new FormatError('complzss header', 0n, `truncated: ${buf.length} bytes, the header alone is 0x180`);
  if (!isComplzss(buf)) throw new FormatError('complzss header', 0n, 'missing "comp" "lzss" magic');
  const compressedSize = be32(buf, 16);
  if (compressedSize > buf.length - COMPLZSS_HEADER_SIZE) {
    throw new FormatError('complzss header', 16n, `compressed size ${compressedSize} exceeds the ${buf.length - COMPLZSS_HEADER_SIZE} bytes after the header`);
  }
  return {
    adler32: be32(buf, 8),
    uncompressedSize: be32(buf, 12),
    compressedSize,
    version: be32(buf, 20),
    reserved: buf.subarray(24, COMPLZSS_HEADER_SIZE),
    stream: buf.subarray(COMPLZSS_HEADER_SIZE, COMPLZSS_HEADER_SIZE + compressedSize),
    trailing: buf.subarray(COMPLZSS_HEADER_SIZE + compressedSize),
  };
}

/** Decompress, checking the declared size against what the stream can hold and the Adler-32. */
export function decodeComplzss(c: Complzss): Uint8Array {
  // Every 17 stream bytes decode to at most 144, so a larger claim is a lie: do not allocate it.
  if (c.uncompressedSize > Math.ceil(c.compressedSize / 17) * 144) {
    throw new FormatError('complzss header', 12n, `uncompressed size ${c.uncompressedSize} is more than ${c.compressedSize} LZSS bytes can produce`);
  }
  const { data } = lzssDecode(c.stream, c.uncompressedSize);
  if (data.length !== c.uncompressedSize) {
    throw new FormatError('complzss stream', 0x180n, `decodes to ${data.length} bytes, the header says ${c.uncompressedSize}`);
  }
  const sum = adler32(data);
  if (sum !== c.adler32) {
    throw new FormatError('complzss stream', 8n, `Adler-32 0x${sum.toString(16)} does not match the header's 0x${c.adler32.toString(16)}`);
  }
  return data;
}

/** Header + stream + trailing data, as one buffer. */
export function buildComplzss(data: Uint8Array, opts: { trailing?: Uint8Array; stream?: Uint8Array; reserved?: Uint8Array } = {}): Uint8Array {
  const stream = opts.stream ?? lzssEncode(data);
  const trailing = opts.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(COMPLZSS_HEADER_SIZE + stream.length + trailing.length);
  const dv = new DataView(out.buffer);
  out.set([0x63, 0x6f, 0x6d, 0x70, 0x6c, 0x7a, 0x73, 0x73]);
  dv.setUint32(8, adler32(data));
  dv.setUint32(12, data.length);
  dv.setUint32(16, stream.length);
  dv.setUint32(20, 1);
  if (opts.reserved) out.set(opts.reserved.subarray(0, COMPLZSS_HEADER_SIZE - 24), 24);
  out.set(stream, COMPLZSS_HEADER_SIZE);
  out.set(trailing, COMPLZSS_HEADER_SIZE + stream.length);
  return out;
}
