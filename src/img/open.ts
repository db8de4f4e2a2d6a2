import { FormatError } from '../errors.js';
import type { FsVolume } from './entry.js';
import { openHfsPlus } from './hfsplus/read.js';
import { openApfs } from './apfs/read.js';
import { offsetSource, view, type ByteSource } from './source.js';

// Finds the file system in an image: a bare HFS+/HFSX or APFS container, or the first such
// partition of a GPT or Apple Partition Map disk. A partition is opened at its offset in the
// whole image with reads allowed past its nominal end (hybrid ISOs point there).

const GPT_APFS = 'ef57347c0000aa11aa1100306543ecac';
const GPT_HFS = '005346480000aa11aa1100306543ecac';

export type FsKind = 'hfsplus' | 'apfs';

function probe(src: ByteSource, base: bigint): FsKind | null {
  if (src.size < base + 1536n) return null;
  const hfs = view(src.read(base + 1024n, 2)).getUint16(0);
  if (hfs === 0x482b || hfs === 0x4858 || hfs === 0x4244) return 'hfsplus';
  if (new TextDecoder().decode(src.read(base + 32n, 4)) === 'NXSB') return 'apfs';
  return null;
}

function gptPartitions(src: ByteSource): bigint[] {
  if (src.size < 1024n) return [];
  const hdr = src.read(512n, 92);
  if (new TextDecoder().decode(hdr.subarray(0, 8)) !== 'EFI PART') return [];
  const dv = view(hdr);
  const entriesLba = dv.getBigUint64(72, true);
  const count = Math.min(dv.getUint32(80, true), 256);
  const size = dv.getUint32(84, true);
  if (size < 128 || size > 4096) throw new FormatError('GPT header', 512n, `partition entry size ${size}`);
  const out: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const at = entriesLba * 512n + BigInt(i * size);
    if (at + 128n > src.size) break;
    const e = src.read(at, 128);
    const type = Buffer.from(e.subarray(0, 16)).toString('hex');
    if (type === GPT_APFS || type === GPT_HFS) out.push(view(e).getBigUint64(32, true) * 512n);
  }
  return out;
}

function apmPartitions(src: ByteSource): bigint[] {
  if (src.size < 1024n) return [];
  const ddm = view(src.read(0n, 4));
  if (ddm.getUint16(0) !== 0x4552) return []; // 'ER'
  const bs = BigInt(ddm.getUint16(2) || 512);
  const out: bigint[] = [];
  let n = 1;
  for (let i = 1; i <= n && i < 64; i++) {
    if (BigInt(i) * bs + 512n > src.size) break;
    const e = src.read(BigInt(i) * bs, 512);
    const dv = view(e);
    if (dv.getUint16(0) !== 0x504d) break; // 'PM'
    n = dv.getUint32(4);
    const type = new TextDecoder().decode(e.subarray(48, 80)).replace(/\0.*$/s, '');
    if (type === 'Apple_HFS' || type === 'Apple_HFSX') out.push(BigInt(dv.getUint32(8)) * bs);
  }
  return out;
}

/** Locate the volume: its byte offset in the image and its kind. */
export function locateVolume(src: ByteSource): { offset: bigint; kind: FsKind } {
  for (const off of [...gptPartitions(src), ...apmPartitions(src)]) {
    const kind = probe(src, off);
    if (kind) return { offset: off, kind };
  }
  const kind = probe(src, 0n);
  if (kind) return { offset: 0n, kind };
  throw new FormatError('image', 0n, 'no HFS+, HFSX or APFS volume found (checked a bare volume, GPT and Apple Partition Map)');
}

export function openVolume(src: ByteSource): FsVolume {
  const { offset, kind } = locateVolume(src);
  const part = offset === 0n ? src : offsetSource(src, offset);
  return kind === 'hfsplus' ? openHfsPlus(part) : openApfs(part);
}
