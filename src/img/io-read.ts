import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FormatError } from '../errors.js';
import type { ByteSource } from './source.js';

// A ByteSource over an image file, read on demand (for images too large to load).

export interface FileSource extends ByteSource {
  close(): void;
}

export function openFileSource(file: string): FileSource {
  const fd = openSync(file, 'r');
  const size = BigInt(fstatSync(fd).size);
  return {
    size,
    read(offset: bigint, length: number): Uint8Array {
      if (offset < 0n || length < 0 || offset + BigInt(length) > size) {
        throw new FormatError('image', offset, `read of ${length} bytes runs past the end (${size} bytes)`, file);
      }
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, Number(offset) + got);
        if (n === 0) throw new FormatError('image', offset, 'short read', file);
        got += n;
      }
      return buf;
    },
    close: () => closeSync(fd),
  };
}
