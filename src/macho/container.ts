import { FormatError } from '../errors.js';
import { type Im4p, type Img4, image4Kind, parseIm4p, parseImg4, buildIm4p, buildImg4 } from './img4.js';
import { isLzfse, lzfseDecode, lzfseScan } from './lzfse-decode.js';
import { lzfseEncode } from './lzfse-encode.js';
import { type Complzss, isComplzss, parseComplzss, decodeComplzss, buildComplzss } from './complzss.js';
import { lzssEncode } from './lzss.js';

// The one way other areas open a file as Apple ships it: peel IMG4 -> IM4P -> compression
// (LZFSE or complzss) down to the payload, and wrap a new payload the same way again.

export type Compression = 'lzfse' | 'lzss' | 'lzvn' | 'none';

export interface RepackOptions {
  /** Compression for the new payload; defaults to the one the file had. */
  compression?: Compression;
}

export interface OpenedContainer {
  /** Outermost first, e.g. ["img4", "im4p:krnl", "lzfse"]; [] for a raw file. */
  layers: string[];
  /** Fully unwrapped content (a subarray of the input when nothing was compressed). */
  payload: Uint8Array;
  fourcc?: string;
  description?: string;
  compression: Compression;
  /** Payload size as stored, before decompression. */
  storedSize: number;
  im4p?: Im4p;
  img4?: Img4;
  complzss?: Complzss;
  /** True when the IM4P payload is encrypted (it has keybags): then `payload` is the ciphertext. */
  encrypted: boolean;
  /** Wrap a new payload exactly as this one was wrapped (same FourCC, description, keybags,
   * properties, IM4M/IM4R, complzss trailing data). */
  repack(newPayload: Uint8Array, opts?: RepackOptions): Uint8Array;
}

export interface OpenOptions {
  /** Ceiling on the decompressed size (bytes). */
  maxOutput?: number;
}

/** LZFSE is the only IM4P compression Apple declares in the trailing SEQUENCE. */
const IM4P_COMPRESSION_LZFSE = 1n;

interface Inner {
  compression: Compression;
  payload: Uint8Array;
  complzss?: Complzss;
  layer?: string;
}

function unwrapCompression(stored: Uint8Array, opts: OpenOptions): Inner {
  if (isComplzss(stored)) {
    const c = parseComplzss(stored);
    if (opts.maxOutput !== undefined && c.uncompressedSize > opts.maxOutput) {
      throw new FormatError('complzss header', 12n, `uncompressed size ${c.uncompressedSize} exceeds the limit of ${opts.maxOutput}`);
    }
    return { compression: 'lzss', payload: decodeComplzss(c), complzss: c, layer: 'complzss' };
  }
  if (isLzfse(stored)) {
    return { compression: 'lzfse', payload: lzfseDecode(stored, { maxOutput: opts.maxOutput }), layer: 'lzfse' };
  }
  return { compression: 'none', payload: stored };
}

/** Compress `data` the way a layer stores it (complzss keeps its trailing data). */
function compressAs(data: Uint8Array, compression: Compression, complzss?: Complzss, onProgress?: (done: number) => void): Uint8Array {
  switch (compression) {
    case 'lzfse': return lzfseEncode(data, { onProgress });
    case 'lzss': return buildComplzss(data, { trailing: complzss?.trailing, reserved: complzss?.reserved, stream: lzssEncode(data, onProgress) });
    case 'none': return data;
    case 'lzvn': throw new FormatError('container', 0n, 'a bare LZVN stream cannot be stored in a container (use lzfse)');
  }
}

export function openContainer(bytes: Uint8Array, opts: OpenOptions = {}): OpenedContainer {
  const kind = image4Kind(bytes);
  if (kind === 'IM4M' || kind === 'IM4R') {
    throw new FormatError(kind, 0n, `a ${kind} carries no payload (open the IMG4 or IM4P instead)`);
  }
  if (kind === 'IMG4' || kind === 'IM4P') {
    const img4 = kind === 'IMG4' ? parseImg4(bytes) : undefined;
    const im4p = img4 ? img4.im4p : parseIm4p(bytes);
    const encrypted = (im4p.keybags?.length ?? 0) > 0;
    const inner: Inner = encrypted ? { compression: 'none', payload: im4p.payload } : unwrapCompression(im4p.payload, opts);
    if (!encrypted && inner.compression === 'lzfse' && im4p.compression && im4p.compression.uncompressedSize !== BigInt(inner.payload.length)) {
      throw new FormatError('IM4P compression', 0n, `declares ${im4p.compression.uncompressedSize} bytes, the LZFSE payload holds ${inner.payload.length}`);
    }
    const layers = [...(img4 ? ['img4'] : []), `im4p:${im4p.fourcc}`, ...(encrypted ? ['encrypted'] : inner.layer ? [inner.layer] : [])];
    return {
      layers,
      payload: inner.payload,
      fourcc: im4p.fourcc,
      description: im4p.description,
      compression: inner.compression,
      storedSize: im4p.payload.length,
      im4p,
      img4,
      complzss: inner.complzss,
      encrypted,
      repack(newPayload, ro = {}) {
        const compression = encrypted ? 'none' : ro.compression ?? inner.compression;
        const stored = compressAs(newPayload, compression, inner.complzss);
        const p: Im4p = { ...im4p, payload: stored };
        if (compression === 'lzfse') p.compression = { algorithm: IM4P_COMPRESSION_LZFSE, uncompressedSize: BigInt(newPayload.length) };
        else if (!encrypted) delete p.compression;
        return img4 ? buildImg4({ ...img4, im4p: p }) : buildIm4p(p);
      },
    };
  }
  if (isComplzss(bytes) || isLzfse(bytes)) {
    const inner = unwrapCompression(bytes, opts);
    return {
      layers: [inner.layer!],
      payload: inner.payload,
      compression: inner.compression,
      storedSize: bytes.length,
      complzss: inner.complzss,
      encrypted: false,
      repack: (newPayload, ro = {}) => compressAs(newPayload, ro.compression ?? inner.compression, inner.complzss),
    };
  }
  return {
    layers: [],
    payload: bytes,
    compression: 'none',
    storedSize: bytes.length,
    encrypted: false,
    repack: (newPayload, ro = {}) => compressAs(newPayload, ro.compression ?? 'none'),
  };
}

export interface PackIm4pOptions {
  fourcc: string;
  description?: string;
  payload: Uint8Array;
  compression: 'lzfse' | 'lzss' | 'none';
  /** Called now and then with the number of payload bytes compressed so far. */
  onProgress?: (done: number) => void;
}

/** A new IM4P around `payload` (LZFSE payloads get the trailing compression SEQUENCE, as Apple's do). */
export function packIm4p(o: PackIm4pOptions): Uint8Array {
  if (o.fourcc.length !== 4 || !/^[\x20-\x7e]{4}$/.test(o.fourcc)) {
    throw new RangeError(`IM4P type must be 4 printable ASCII characters, got ${JSON.stringify(o.fourcc)}`);
  }
  const stored = compressAs(o.payload, o.compression, undefined, o.onProgress);
  const p: Im4p = { fourcc: o.fourcc, description: o.description ?? '', payload: stored };
  if (o.compression === 'lzfse') p.compression = { algorithm: IM4P_COMPRESSION_LZFSE, uncompressedSize: BigInt(o.payload.length) };
  return buildIm4p(p);
}

/** Where the LZFSE stream of `bytes` ends (anything after bvx$ is not part of it). */
export function lzfseStreamEnd(bytes: Uint8Array): number {
  return lzfseScan(bytes).streamEnd;
}
