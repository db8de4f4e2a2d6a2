import { MAGIC_END, MAGIC_RAW } from './lzfse-tables.js';

// LZFSE encoder.

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

export function lzfseEncode(src: Uint8Array): Uint8Array {
  return lzfseEncodeRaw(src);
}
