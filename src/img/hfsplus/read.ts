import { FormatError, checkedSize } from '../../errors.js';
import type { FsEntry, FsVolume } from '../entry.js';
import { splitPath } from '../entry.js';
import { view, type ByteSource } from '../source.js';
import { ImageInputError } from '../input-error.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../tree.js';
import * as F from './format.js';
import { compareFolded, fromUtf16, hfsDecompose, toUtf16 } from './unicode.js';

// HFS+ / HFSX reader over a positional source: reads the volume header, the extents-overflow
// and catalog B-trees (leaf chains only), and file data through fork extents.

interface Run { start: number; count: number }
interface Fork { logical: bigint; blocks: number; runs: Run[] }

interface CatalogNode {
  cnid: number;
  parent: number;
  name16: Uint16Array;
  isDir: boolean;
  rec: Uint8Array;
  recOffset: bigint;
}

const MAX_TREE_BYTES = 1 << 30;
const CHUNK = 1 << 20;

function parseFork(b: Uint8Array, o: number): Fork {
  const dv = view(b);
  const runs: Run[] = [];
  for (let i = 0; i < 8; i++) {
    const count = dv.getUint32(o + 20 + 8 * i);
    if (count > 0) runs.push({ start: dv.getUint32(o + 16 + 8 * i), count });
  }
  return { logical: dv.getBigUint64(o), blocks: dv.getUint32(o + 12), runs };
}

export interface LeafRecord { key: Uint8Array; data: Uint8Array; offset: bigint }

/** Every leaf record of a B-tree held in `tree`, in key order (following the leaf chain). */
export function leafRecords(tree: Uint8Array, treeOffset: bigint, what: string): LeafRecord[] {
  if (tree.length < 512) throw new FormatError(`${what} B-tree`, treeOffset, 'file is shorter than a header node');
  const hv = view(tree);
  const nodeSize = hv.getUint16(14 + 18);
  if (nodeSize < 512 || nodeSize > 32768 || (nodeSize & (nodeSize - 1)) !== 0) throw new FormatError(`${what} B-tree header`, treeOffset + 32n, `bad node size ${nodeSize}`);
  const totalNodes = Math.min(hv.getUint32(14 + 22), Math.floor(tree.length / nodeSize));
  const out: LeafRecord[] = [];
  let node = hv.getUint32(14 + 10);
  let visited = 0;
  while (node !== 0) {
    if (node >= totalNodes) throw new FormatError(`${what} B-tree`, treeOffset, `leaf node ${node} outside the ${totalNodes}-node tree`);
    if (++visited > totalNodes) throw new FormatError(`${what} B-tree`, treeOffset, 'leaf chain loops');
    const base = node * nodeSize;
    const nodeOff = treeOffset + BigInt(base);
    const nd = new DataView(tree.buffer, tree.byteOffset + base, nodeSize);
    if (nd.getInt8(8) !== F.kBTLeafNode) throw new FormatError(`${what} B-tree node ${node}`, nodeOff, `kind ${nd.getInt8(8)} where a leaf was expected`);
    const n = nd.getUint16(10);
    if (14 + 2 * (n + 1) > nodeSize) throw new FormatError(`${what} B-tree node ${node}`, nodeOff, `${n} records do not fit`);
    for (let i = 0; i < n; i++) {
      const start = nd.getUint16(nodeSize - 2 * (i + 1));
      const end = nd.getUint16(nodeSize - 2 * (i + 2));
      if (start < 14 || end > nodeSize - 2 * (n + 1) || end < start + 2) throw new FormatError(`${what} B-tree node ${node}`, nodeOff, `record ${i} offsets ${start}..${end} are out of order`);
      const keyLen = nd.getUint16(start);
      const dataStart = start + 2 + keyLen;
      if (dataStart > end) throw new FormatError(`${what} B-tree node ${node}`, nodeOff + BigInt(start), `key length ${keyLen} runs past the record`);
      out.push({ key: tree.subarray(base + start, base + dataStart), data: tree.subarray(base + dataStart, base + end), offset: nodeOff + BigInt(start) });
    }
    node = nd.getUint32(0);
  }
  return out;
}

export class HfsPlusVolume implements FsVolume {
  readonly format: 'hfsplus' | 'hfsx';
  readonly caseSensitive: boolean;
  readonly label: string;
  readonly blockSize: number;
  private readonly overflow = new Map<string, Run[]>();
  private readonly nodes = new Map<number, CatalogNode>();
  private readonly kids = new Map<number, number[]>();

  constructor(private readonly src: ByteSource) {
    const hdr = src.read(BigInt(F.VOLUME_HEADER_OFFSET), 512);
    const dv = view(hdr);
    const sig = dv.getUint16(0);
    const at = BigInt(F.VOLUME_HEADER_OFFSET);
    if (sig === F.kHFSSigWord) throw new FormatError('HFS volume header', at, "classic HFS (signature 'BD') is not supported: only HFS+ and HFSX");
    if (sig !== F.kHFSPlusSigWord && sig !== F.kHFSXSigWord) throw new FormatError('HFS+ volume header', at, `signature 0x${sig.toString(16)} is neither 'H+' nor 'HX'`);
    this.blockSize = dv.getUint32(40);
    if (this.blockSize < 512 || this.blockSize > 1 << 24 || (this.blockSize & (this.blockSize - 1)) !== 0) throw new FormatError('HFS+ volume header', at + 40n, `bad block size ${this.blockSize}`);
    const extentsFork = parseFork(hdr, 192);
    const catalogFork = parseFork(hdr, 272);
    for (const r of leafRecords(this.readFork(extentsFork, 'extents', F.kHFSExtentsFileID), 0n, 'extents')) {
      const k = view(r.key);
      if (r.key.length < 12 || r.data.length < 64) throw new FormatError('extents-overflow record', r.offset, 'too short');
      const id = `${k.getUint32(4)}:${k.getUint8(2)}`;
      const runs = this.overflow.get(id) ?? [];
      const d = view(r.data);
      for (let i = 0; i < 8; i++) if (d.getUint32(8 * i + 4) > 0) runs.push({ start: d.getUint32(8 * i), count: d.getUint32(8 * i + 4) });
      this.overflow.set(id, runs);
    }
    const catalog = this.readFork(catalogFork, 'catalog', F.kHFSCatalogFileID);
    const keyCompare = catalog.length >= 52 ? catalog[14 + 37]! : 0;
    this.format = sig === F.kHFSXSigWord ? 'hfsx' : 'hfsplus';
    this.caseSensitive = sig === F.kHFSXSigWord && keyCompare === F.kHFSBinaryCompare;
    let label = '';
    const records = leafRecords(catalog, 0n, 'catalog');
    for (const r of records) {
      const k = view(r.key);
      if (r.key.length < 8) throw new FormatError('catalog key', r.offset, 'too short');
      const parent = k.getUint32(2);
      const nameLen = k.getUint16(6);
      if (8 + 2 * nameLen > r.key.length || nameLen > 255) throw new FormatError('catalog key', r.offset, `name length ${nameLen} runs past the key`);
      const name16 = new Uint16Array(nameLen);
      for (let i = 0; i < nameLen; i++) name16[i] = k.getUint16(8 + 2 * i);
      if (r.data.length < 2) throw new FormatError('catalog record', r.offset, 'empty');
      const d = view(r.data);
      const type = d.getInt16(0);
      if (type !== F.kHFSPlusFolderRecord && type !== F.kHFSPlusFileRecord) continue; // threads
      const need = type === F.kHFSPlusFolderRecord ? 88 : 248;
      if (r.data.length < need) throw new FormatError('catalog record', r.offset, `record type ${type} is ${r.data.length} bytes, needs ${need}`);
      const cnid = d.getUint32(8);
      if (this.nodes.has(cnid)) throw new FormatError('catalog record', r.offset, `CNID ${cnid} appears twice`);
      this.nodes.set(cnid, { cnid, parent, name16, isDir: type === F.kHFSPlusFolderRecord, rec: r.data, recOffset: r.offset });
      if (cnid === F.kHFSRootFolderID) label = fromUtf16(name16);
      else {
        const list = this.kids.get(parent) ?? [];
        list.push(cnid);
        this.kids.set(parent, list);
      }
    }
    if (!this.nodes.has(F.kHFSRootFolderID)) throw new FormatError('catalog', 0n, 'no root folder record (CNID 2)');
    this.label = label;
  }

  /** The whole of a B-tree special file. */
  private readFork(fork: Fork, what: string, fileID: number): Uint8Array {
    const size = checkedSize(`${what} file size`, BigInt(F.VOLUME_HEADER_OFFSET), fork.logical, MAX_TREE_BYTES);
    const out = new Uint8Array(size);
    let pos = 0;
    for (const chunk of this.forkChunks(fork, fileID, 0)) {
      out.set(chunk, pos);
      pos += chunk.length;
    }
    return out;
  }

  private *forkChunks(fork: Fork, fileID: number, forkType: number): Generator<Uint8Array> {
    const runs = [...fork.runs];
    if (fileID !== F.kHFSExtentsFileID) runs.push(...(this.overflow.get(`${fileID}:${forkType}`) ?? []));
    let left = fork.logical;
    const bs = BigInt(this.blockSize);
    for (const r of runs) {
      let off = BigInt(r.start) * bs;
      let bytes = BigInt(r.count) * bs;
      while (bytes > 0n && left > 0n) {
        const n = Number([bytes, left, BigInt(CHUNK)].reduce((a, b) => (a < b ? a : b)));
        yield this.src.read(off, n);
        off += BigInt(n);
        bytes -= BigInt(n);
        left -= BigInt(n);
      }
      if (left === 0n) return;
    }
    if (left > 0n) throw new FormatError(`fork of CNID ${fileID}`, BigInt(F.VOLUME_HEADER_OFFSET), `extents cover ${fork.logical - left} of ${fork.logical} bytes`);
  }

  private entryOf(n: CatalogNode, path: string): FsEntry {
    const d = view(n.rec);
    const rawMode = d.getUint16(42);
    const uid = d.getUint32(32);
    const gid = d.getUint32(36);
    const mtimeNs = F.fromHfsDate(d.getUint32(16));
    const name = n.cnid === F.kHFSRootFolderID ? '' : fromUtf16(n.name16);
    if (n.isDir) {
      return { path, name, kind: 'dir', mode: S_IFDIR | (rawMode & S_IFMT ? rawMode & 0o7777 : 0o755), uid, gid, size: 0n, mtimeNs, id: BigInt(n.cnid) };
    }
    const fork = parseFork(n.rec, 88);
    const isLink = (rawMode & S_IFMT) === S_IFLNK || (d.getUint32(48) === F.SYMLINK_TYPE && d.getUint32(52) === F.SYMLINK_CREATOR);
    const e: FsEntry = {
      path, name, kind: isLink ? 'symlink' : (rawMode & S_IFMT) === S_IFREG || (rawMode & S_IFMT) === 0 ? 'file' : 'other',
      mode: rawMode & S_IFMT ? rawMode : S_IFREG | 0o644, uid, gid, size: fork.logical, mtimeNs, id: BigInt(n.cnid),
    };
    if (isLink) {
      const bytes = this.collect(fork, n.cnid, 4096);
      e.target = new TextDecoder().decode(bytes);
      e.mode = S_IFLNK | (rawMode & 0o7777 || 0o755);
    }
    return e;
  }

  private collect(fork: Fork, cnid: number, limit: number): Uint8Array {
    const size = checkedSize('symlink data', 0n, fork.logical, limit);
    const out = new Uint8Array(size);
    let pos = 0;
    for (const c of this.forkChunks(fork, cnid, 0)) { out.set(c, pos); pos += c.length; }
    return out;
  }

  private lookup(path: string): { node: CatalogNode; path: string } {
    let node = this.nodes.get(F.kHFSRootFolderID)!;
    let at = '';
    for (const part of splitPath(path)) {
      if (!node.isDir) throw new ImageInputError(`${at || '/'}: not a directory`);
      const want = toUtf16(hfsDecompose(part));
      const kids = (this.kids.get(node.cnid) ?? []).map((c) => this.nodes.get(c)!);
      const found = kids.find((k) => fromUtf16(k.name16) === part) ??
        kids.find((k) => (this.caseSensitive ? fromUtf16(k.name16) === fromUtf16(want) : compareFolded(k.name16, want) === 0));
      if (!found) throw new ImageInputError(`${at}/${part}: no such file or directory in the image`);
      node = found;
      at += '/' + fromUtf16(found.name16);
    }
    return { node, path: at || '/' };
  }

  stat(path: string): FsEntry {
    const { node, path: p } = this.lookup(path);
    return this.entryOf(node, p);
  }

  list(path: string): FsEntry[] {
    const { node, path: p } = this.lookup(path);
    if (!node.isDir) return [this.entryOf(node, p)];
    return this.children(node.cnid, p);
  }

  private children(cnid: number, p: string): FsEntry[] {
    const prefix = p === '/' ? '' : p;
    return (this.kids.get(cnid) ?? []).map((c) => {
      const k = this.nodes.get(c)!;
      return this.entryOf(k, `${prefix}/${fromUtf16(k.name16)}`);
    });
  }

  read(path: string): Iterable<Uint8Array> {
    const { node } = this.lookup(path);
    if (node.isDir) throw new ImageInputError(`${path}: is a directory`);
    return this.forkChunks(parseFork(node.rec, 88), node.cnid, 0);
  }

  readEntry(entry: FsEntry): Iterable<Uint8Array> {
    const node = this.nodes.get(Number(entry.id));
    if (!node || node.isDir) throw new ImageInputError(`${entry.path}: not a file of this volume`);
    return this.forkChunks(parseFork(node.rec, 88), node.cnid, 0);
  }

  *walk(path = '/'): Iterable<FsEntry> {
    const stack = [...this.list(path)].reverse();
    let guard = 0;
    while (stack.length > 0) {
      const e = stack.pop()!;
      if (++guard > this.nodes.size) throw new FormatError('catalog', 0n, 'directory structure loops');
      yield e;
      if (e.kind === 'dir') stack.push(...this.children(Number(e.id), e.path).reverse());
    }
  }
}

export function openHfsPlus(src: ByteSource): HfsPlusVolume {
  return new HfsPlusVolume(src);
}
