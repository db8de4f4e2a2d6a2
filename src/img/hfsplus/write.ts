import { createHash } from 'node:crypto';
import { ImageInputError } from '../input-error.js';
import { checkName, tooLong } from '../names.js';
import { allocateRuns, dataPieces, roundUp, type ImagePlan, type MetaPiece, type DataPiece } from '../plan.js';
import { contentOf, dataLength, modeOf, type DirNode, type TreeNode } from '../tree.js';
import { buildBTree, type BRecord } from './btree-write.js';
import * as F from './format.js';
import { compareBinary, compareFolded, hfsDecompose, toUtf16 } from './unicode.js';

// HFS+ / HFSX writer: lays out a volume for a metadata tree and returns the metadata blocks plus
// the places where file contents go (src/img/plan.ts). Layout: block 0 holds the volume header,
// then the file data (in tree order, contiguous unless fragmentation is forced), the
// extents-overflow, catalog and attributes B-trees, the allocation bitmap (the volume header's
// allocationFile fork says where; TN1150 fixes no place for it), free space, and the last block
// holding the alternate volume header. Not journaled.

export interface HfsPlusOptions {
  label: string;
  caseSensitive?: boolean;
  /** Image size in bytes; default: what the tree needs plus some slack. */
  size?: bigint;
  blockSize?: number;
  /** Volume creation/modification time (ns since 1970). */
  createdNs: bigint;
  /** Testing aid: split file data into extents of at most this many blocks, one free block apart. */
  fragmentBlocks?: number;
}

interface Entry {
  node: TreeNode;
  cnid: number;
  parent: number;
  name16: Uint16Array;
  extents: { start: number; count: number }[];
  blocks: number;
}

const CATALOG_NODE = 8192;
const EXTENTS_NODE = 4096;
const ATTR_NODE = 8192;

function u16be(dv: DataView, o: number, v: number) { dv.setUint16(o, v); }

function catalogKey(parent: number, name: Uint16Array): Uint8Array {
  const k = new Uint8Array(8 + name.length * 2);
  const dv = new DataView(k.buffer);
  u16be(dv, 0, 6 + name.length * 2);
  dv.setUint32(2, parent);
  u16be(dv, 6, name.length);
  name.forEach((c, i) => dv.setUint16(8 + 2 * i, c));
  return k;
}

function threadRecord(type: number, parent: number, name: Uint16Array): Uint8Array {
  const r = new Uint8Array(10 + name.length * 2);
  const dv = new DataView(r.buffer);
  dv.setInt16(0, type);
  dv.setUint32(4, parent);
  u16be(dv, 8, name.length);
  name.forEach((c, i) => dv.setUint16(10 + 2 * i, c));
  return r;
}

function forkData(dv: DataView, o: number, logical: bigint, blocks: number, extents: { start: number; count: number }[], clump = 0): void {
  dv.setBigUint64(o, logical);
  dv.setUint32(o + 8, clump);
  dv.setUint32(o + 12, blocks);
  extents.slice(0, 8).forEach((e, i) => {
    dv.setUint32(o + 16 + 8 * i, e.start);
    dv.setUint32(o + 20 + 8 * i, e.count);
  });
}

function bsdInfo(dv: DataView, o: number, n: TreeNode): void {
  dv.setUint32(o, n.uid >>> 0);
  dv.setUint32(o + 4, n.gid >>> 0);
  dv.setUint16(o + 10, modeOf(n));
}

function dates(dv: DataView, n: TreeNode): void {
  const d = F.toHfsDate(n.mtimeNs);
  for (const o of [12, 16, 20, 24]) dv.setUint32(o, d); // create, contentMod, attributeMod, access
}

function folderRecord(e: Entry, valence: number): Uint8Array {
  const r = new Uint8Array(88);
  const dv = new DataView(r.buffer);
  dv.setInt16(0, F.kHFSPlusFolderRecord);
  dv.setUint16(2, e.node.xattrs.length > 0 ? F.kHFSHasAttributesMask : 0);
  dv.setUint32(4, valence);
  dv.setUint32(8, e.cnid);
  dates(dv, e.node);
  bsdInfo(dv, 32, e.node);
  return r;
}

function fileRecord(e: Entry): Uint8Array {
  const r = new Uint8Array(248);
  const dv = new DataView(r.buffer);
  dv.setInt16(0, F.kHFSPlusFileRecord);
  dv.setUint16(2, F.kHFSThreadExistsMask | (e.node.xattrs.length > 0 ? F.kHFSHasAttributesMask : 0));
  dv.setUint32(8, e.cnid);
  dates(dv, e.node);
  bsdInfo(dv, 32, e.node);
  if (e.node.kind === 'symlink') {
    dv.setUint32(48, F.SYMLINK_TYPE);
    dv.setUint32(52, F.SYMLINK_CREATOR);
  }
  forkData(dv, 88, dataLength(e.node), e.blocks, e.extents);
  return r;
}

function extentsKey(fileID: number, startBlock: number): Uint8Array {
  const k = new Uint8Array(12);
  const dv = new DataView(k.buffer);
  dv.setUint16(0, 10);
  dv.setUint8(2, 0); // data fork
  dv.setUint32(4, fileID);
  dv.setUint32(8, startBlock);
  return k;
}

function attrKey(fileID: number, name: Uint16Array): Uint8Array {
  const k = new Uint8Array(14 + name.length * 2);
  const dv = new DataView(k.buffer);
  dv.setUint16(0, 12 + name.length * 2);
  dv.setUint32(4, fileID);
  dv.setUint16(12, name.length);
  name.forEach((c, i) => dv.setUint16(14 + 2 * i, c));
  return k;
}

/** Largest inline attribute value: two records must fit one attributes node. */
export const MAX_INLINE_XATTR = Math.floor((ATTR_NODE - F.NODE_DESCRIPTOR_SIZE - 6) / 2) - 16 - (14 + 2 * 127);

function collect(root: DirNode, cmp: (a: Uint16Array, b: Uint16Array) => number, label16: Uint16Array): { entries: Entry[]; children: Map<number, Entry[]> } {
  const entries: Entry[] = [];
  const children = new Map<number, Entry[]>();
  let next = F.kHFSFirstUserCatalogNodeID;
  const rootEntry: Entry = { node: root, cnid: F.kHFSRootFolderID, parent: F.kHFSRootParentID, name16: label16, extents: [], blocks: 0 };
  entries.push(rootEntry);
  const stack: { dir: DirNode; cnid: number; path: string; depth: number }[] = [{ dir: root, cnid: F.kHFSRootFolderID, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { dir, cnid, path, depth } = stack.pop()!;
    if (depth > 4096) throw new ImageInputError(`${path}: directories nested deeper than 4096`);
    const kids: Entry[] = [];
    for (const c of dir.children) {
      const where = `${path}/${c.name}`;
      checkName(c.name, where);
      const name16 = toUtf16(hfsDecompose(c.name));
      if (name16.length > 255) throw tooLong(where, c.name, name16.length, 'UTF-16 units after decomposition');
      if (next > 0xffffffff) throw new ImageInputError('more than 2^32 catalog nodes');
      kids.push({ node: c, cnid: next++, parent: cnid, name16, extents: [], blocks: 0 });
    }
    kids.sort((a, b) => cmp(a.name16, b.name16));
    for (let i = 1; i < kids.length; i++) {
      if (cmp(kids[i - 1]!.name16, kids[i]!.name16) === 0) {
        throw new ImageInputError(`${path}/: names ${JSON.stringify(kids[i - 1]!.node.name)} and ${JSON.stringify(kids[i]!.node.name)} are the same on a case-${cmp === compareBinary ? 'sensitive' : 'insensitive'} HFS+ volume`);
      }
    }
    children.set(cnid, kids);
    for (const k of kids) {
      entries.push(k);
      if (k.node.kind === 'dir') stack.push({ dir: k.node, cnid: k.cnid, path: `${path}/${k.node.name}`, depth: depth + 1 });
    }
  }
  return { entries, children };
}

interface Layout {
  totalBlocks: number;
  bitmapBlocks: number;
  /** The allocation file follows the B-trees (its size depends on the volume size). */
  bitmapStart: number;
  trees: { extents: Uint8Array; catalog: Uint8Array; attributes: Uint8Array };
  treeStart: { extents: number; catalog: number; attributes: number };
  usedEnd: number;
  fileCount: number;
  folderCount: number;
  nextCnid: number;
}

export function planHfsPlus(root: DirNode, opts: HfsPlusOptions): ImagePlan {
  const bs = opts.blockSize ?? 4096;
  const cs = Boolean(opts.caseSensitive);
  const cmp = cs ? compareBinary : compareFolded;
  const label16 = toUtf16(hfsDecompose(opts.label));
  if (label16.length > 255 || label16.length === 0) throw new ImageInputError(`volume label ${JSON.stringify(opts.label)} must be 1 to 255 UTF-16 units`);
  if (opts.label.includes(':')) throw new ImageInputError(`volume label ${JSON.stringify(opts.label)} must not contain ':'`);
  const { entries, children } = collect(root, cmp, label16);
  for (const e of entries) {
    const len = dataLength(e.node);
    const blocks = (len + BigInt(bs) - 1n) / BigInt(bs);
    if (blocks > 0xffffffffn) throw new ImageInputError(`${e.node.name}: ${len} bytes is too large for HFS+ with ${bs}-byte blocks`);
    e.blocks = Number(blocks);
  }
  const dataBlocks = entries.reduce((s, e) => s + e.blocks, 0);
  const frag = opts.fragmentBlocks && opts.fragmentBlocks > 0 ? opts.fragmentBlocks : 0;

  // Everything but the allocation bitmap is placed once, from block 1: no position depends on
  // the volume size, so the B-trees are built once whatever --size is.
  const layoutOnce = (): Layout => {
    let cursor = 1;
    const overflow: BRecord[] = [];
    for (const e of entries) {
      const a = allocateRuns(e.blocks, cursor, frag);
      e.extents = a.runs;
      cursor = a.next;
      for (let i = 8, fileBlock = e.extents.slice(0, 8).reduce((s, x) => s + x.count, 0); i < e.extents.length; i += 8) {
        const group = e.extents.slice(i, i + 8);
        const rec = new Uint8Array(64);
        const dv = new DataView(rec.buffer);
        group.forEach((x, j) => { dv.setUint32(8 * j, x.start); dv.setUint32(8 * j + 4, x.count); });
        overflow.push({ key: extentsKey(e.cnid, fileBlock), data: rec });
        fileBlock += group.reduce((s, x) => s + x.count, 0);
      }
    }
    overflow.sort((a, b) => {
      const da = new DataView(a.key.buffer), db = new DataView(b.key.buffer);
      return da.getUint32(4) - db.getUint32(4) || da.getUint32(8) - db.getUint32(8);
    });
    const catalogRecs: BRecord[] = [];
    let fileCount = 0;
    let folderCount = 0;
    const byCnid = [...entries].sort((a, b) => a.cnid - b.cnid);
    // Group 1 holds the root folder's own record; every other group starts with the thread of
    // its CNID, then (for folders) the children in name order.
    const rootKids = children.get(F.kHFSRootFolderID)!;
    catalogRecs.push({ key: catalogKey(F.kHFSRootParentID, label16), data: folderRecord(entries[0]!, rootKids.length) });
    for (const e of byCnid) {
      const isDir = e.node.kind === 'dir';
      catalogRecs.push({ key: catalogKey(e.cnid, new Uint16Array(0)), data: threadRecord(isDir ? F.kHFSPlusFolderThreadRecord : F.kHFSPlusFileThreadRecord, e.parent, e.name16) });
      for (const k of children.get(e.cnid) ?? []) {
        if (k.node.kind === 'dir') {
          folderCount++;
          catalogRecs.push({ key: catalogKey(e.cnid, k.name16), data: folderRecord(k, children.get(k.cnid)!.length) });
        } else {
          fileCount++;
          catalogRecs.push({ key: catalogKey(e.cnid, k.name16), data: fileRecord(k) });
        }
      }
    }
    const attrRecs: BRecord[] = [];
    for (const e of byCnid) {
      const named = e.node.xattrs.map((x) => ({ x, n16: toUtf16(x.name) })).sort((a, b) => compareBinary(a.n16, b.n16));
      for (const { x, n16 } of named) {
        if (n16.length === 0 || n16.length > 127) throw new ImageInputError(`${e.node.name}: extended attribute name ${JSON.stringify(x.name)} must be 1 to 127 UTF-16 units`);
        if (x.value.length > MAX_INLINE_XATTR) throw new ImageInputError(`${e.node.name}: extended attribute ${x.name} is ${x.value.length} bytes; HFS+ images hold inline attributes up to ${MAX_INLINE_XATTR} bytes`);
        const rec = new Uint8Array(16 + x.value.length + (x.value.length & 1));
        const dv = new DataView(rec.buffer);
        dv.setUint32(0, F.kHFSPlusAttrInlineData);
        dv.setUint32(12, x.value.length);
        rec.set(x.value, 16);
        attrRecs.push({ key: attrKey(e.cnid, n16), data: rec });
      }
    }
    const extents = buildBTree(overflow, { nodeSize: EXTENTS_NODE, maxKeyLength: 10, attributes: F.kBTBigKeysMask, keyCompareType: 0, variableIndexKeys: false, clumpSize: EXTENTS_NODE * 4 });
    const catalog = buildBTree(catalogRecs, { nodeSize: CATALOG_NODE, maxKeyLength: 516, attributes: F.kBTBigKeysMask | F.kBTVariableIndexKeysMask, keyCompareType: cs ? F.kHFSBinaryCompare : F.kHFSCaseFolding, variableIndexKeys: true, clumpSize: CATALOG_NODE * 4 });
    const attributes = buildBTree(attrRecs, { nodeSize: ATTR_NODE, maxKeyLength: 266, attributes: F.kBTBigKeysMask | F.kBTVariableIndexKeysMask, keyCompareType: 0, variableIndexKeys: true, clumpSize: ATTR_NODE * 4 });
    const blocksOf = (b: Uint8Array) => Math.ceil(b.length / bs);
    const treeStart = { extents: cursor, catalog: cursor + blocksOf(extents.bytes), attributes: 0 };
    treeStart.attributes = treeStart.catalog + blocksOf(catalog.bytes);
    cursor = treeStart.attributes + blocksOf(attributes.bytes);
    return {
      totalBlocks: 0, bitmapBlocks: 0, bitmapStart: cursor, usedEnd: cursor, fileCount, folderCount,
      trees: { extents: extents.bytes, catalog: catalog.bytes, attributes: attributes.bytes },
      treeStart, nextCnid: entries.reduce((m, x) => Math.max(m, x.cnid + 1), F.kHFSFirstUserCatalogNodeID),
    };
  };

  const layout = layoutOnce();
  const bitmapBlocksFor = (total: number) => Math.ceil(Math.ceil(total / 8) / bs);
  let total: number;
  if (opts.size !== undefined) {
    const t = opts.size / BigInt(bs);
    if (opts.size % BigInt(bs) !== 0n) throw new ImageInputError(`--size ${opts.size} is not a multiple of the ${bs}-byte block size`);
    if (t > 0xffffffffn) throw new ImageInputError(`--size ${opts.size} is more than 2^32 blocks of ${bs} bytes`);
    total = Number(t);
    const need = layout.usedEnd + bitmapBlocksFor(total) + 1;
    if (need > total) {
      throw new ImageInputError(`image too small: the tree needs ${BigInt(need) * BigInt(bs)} bytes (${need} blocks of ${bs}), --size gives ${opts.size}`);
    }
  } else {
    // Slack: about 5% free space (at least 1 MiB) so the volume is usable when mounted; the
    // size is a whole number of MiB.
    const slack = Math.max(Math.ceil((1 << 20) / bs), Math.ceil(layout.usedEnd * 0.05));
    const unit = BigInt(Math.max(1, (1 << 20) / bs));
    total = layout.usedEnd + 1 + slack;
    for (let i = 0; i < 8; i++) {
      const t = Number(roundUp(BigInt(layout.usedEnd + bitmapBlocksFor(total) + 1 + slack), unit));
      if (t === total) break;
      total = t;
    }
  }
  layout.totalBlocks = total;
  layout.bitmapBlocks = bitmapBlocksFor(total);
  layout.usedEnd += layout.bitmapBlocks;
  return emit(entries, layout, opts, bs, cs, dataBlocks);
}

function emit(entries: Entry[], L: Layout, opts: HfsPlusOptions, bs: number, cs: boolean, dataBlocks: number): ImagePlan {
  const size = BigInt(L.totalBlocks) * BigInt(bs);
  const meta: MetaPiece[] = [];
  const data: DataPiece[] = [];
  let dataBytes = 0n;
  const bitmap = new Uint8Array(L.bitmapBlocks * bs);
  const mark = (start: number, count: number) => {
    for (let b = start; b < start + count; b++) bitmap[b >> 3]! |= 0x80 >> (b & 7);
  };
  mark(0, 1);
  mark(L.treeStart.extents, L.usedEnd - L.treeStart.extents); // the B-trees and the bitmap
  mark(L.totalBlocks - 1, 1);
  for (const e of entries) {
    if (e.node.kind === 'dir') continue;
    for (const x of e.extents) mark(x.start, x.count);
    const len = dataLength(e.node);
    if (len > 0n) {
      data.push(...dataPieces(contentOf(e.node), len, e.extents.map((x) => ({ offset: BigInt(x.start) * BigInt(bs), bytes: BigInt(x.count) * BigInt(bs) }))));
      dataBytes += len;
    }
  }
  let used = 0;
  for (let b = 0; b < L.totalBlocks; b++) if (bitmap[b >> 3]! & (0x80 >> (b & 7))) used++;
  const header = new Uint8Array(512);
  const dv = new DataView(header.buffer);
  const now = F.toHfsDate(opts.createdNs);
  dv.setUint16(0, cs ? F.kHFSXSigWord : F.kHFSPlusSigWord);
  dv.setUint16(2, cs ? F.kHFSXVersion : F.kHFSPlusVersion);
  dv.setUint32(4, F.kHFSVolumeUnmountedBit);
  dv.setUint32(8, 0x31302e30); // lastMountedVersion '10.0': not journaled
  for (const o of [16, 20, 28]) dv.setUint32(o, now); // create, modify, checked
  dv.setUint32(32, L.fileCount);
  dv.setUint32(36, L.folderCount);
  dv.setUint32(40, bs);
  dv.setUint32(44, L.totalBlocks);
  dv.setUint32(48, L.totalBlocks - used);
  dv.setUint32(52, L.usedEnd);
  dv.setUint32(56, bs * 16); // rsrcClumpSize
  dv.setUint32(60, bs * 16); // dataClumpSize
  dv.setUint32(64, L.nextCnid);
  dv.setUint32(68, 1); // writeCount
  dv.setBigUint64(72, 1n); // encodingsBitmap: MacRoman
  // finderInfo[6..7]: the 64-bit volume identifier, derived from the catalog so it is stable.
  header.set(createHash('sha256').update(L.trees.catalog).update(String(dataBlocks)).digest().subarray(0, 8), 80 + 24);
  forkData(dv, 112, BigInt(bitmap.length), L.bitmapBlocks, [{ start: L.bitmapStart, count: L.bitmapBlocks }], bs);
  const fork = (o: number, bytes: Uint8Array, start: number) => {
    const blocks = Math.ceil(bytes.length / bs);
    forkData(dv, o, BigInt(bytes.length), blocks, blocks ? [{ start, count: blocks }] : [], bytes.length);
  };
  fork(192, L.trees.extents, L.treeStart.extents);
  fork(272, L.trees.catalog, L.treeStart.catalog);
  fork(352, L.trees.attributes, L.treeStart.attributes);
  meta.push({ offset: BigInt(F.VOLUME_HEADER_OFFSET), bytes: header });
  meta.push({ offset: BigInt(L.bitmapStart) * BigInt(bs), bytes: bitmap });
  meta.push({ offset: BigInt(L.treeStart.extents) * BigInt(bs), bytes: L.trees.extents });
  meta.push({ offset: BigInt(L.treeStart.catalog) * BigInt(bs), bytes: L.trees.catalog });
  meta.push({ offset: BigInt(L.treeStart.attributes) * BigInt(bs), bytes: L.trees.attributes });
  meta.push({ offset: size - 1024n, bytes: header });
  return { size, meta, data, dataBytes };
}
