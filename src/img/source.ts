import { FormatError } from '../errors.js';

// Readers work over a positional byte source: a Uint8Array in memory, or (in io-*.ts) a file
// read on demand, so multi-GiB images need not be loaded.

export interface ByteSource {
  readonly size: bigint;
  /** Exactly `length` bytes at `offset`; throws FormatError past the end. */
  read(offset: bigint, length: number): Uint8Array;
}

export function bytesSource(buf: Uint8Array): ByteSource {
  return {
    size: BigInt(buf.length),
    read(offset: bigint, length: number): Uint8Array {
      if (offset < 0n || offset + BigInt(length) > BigInt(buf.length)) {
        throw new FormatError('image', offset, `read of ${length} bytes runs past the end (${buf.length} bytes)`);
      }
      const o = Number(offset);
      return buf.subarray(o, o + length);
    },
  };
}

/** A window of `base` onto another source (a partition); reads may go past its nominal end. */
export function offsetSource(src: ByteSource, base: bigint): ByteSource {
  return {
    size: src.size - base,
    read: (offset, length) => src.read(base + offset, length),
  };
}

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
