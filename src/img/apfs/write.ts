import { createHash } from 'node:crypto';
import { ImageInputError } from '../input-error.js';
import { checkName, tooLong } from '../names.js';
import { allocateRuns, dataPieces, type DataPiece, type ImagePlan, type MetaPiece } from '../plan.js';
import { contentOf, dataLength, modeOf, type DirNode, type TreeNode } from '../tree.js';
import { planTree, type KV, type TreeSpec } from './btree-write.js';
import { sealObject } from './checksum.js';
import * as F from './format.js';
import { view } from '../source.js';
import { foldName, nameHash } from './names.js';
import { buildSpaceman, spacemanGeometry, type SpacemanGeometry } from './spaceman-write.js';

// APFS writer: one container, one volume, one checkpoint (transaction 1). Block layout:
//   0                 container superblock (and its copy in the checkpoint descriptor area)
//   1..8              checkpoint descriptor area: checkpoint map, superblock copy
//   9..60             checkpoint data area: reaper, space manager, two free-queue roots
//   1024..1028        container omap + root, volume superblock, volume omap, snapshot tree
//                     (61..65 in containers under 8 MiB; see fixedBlocks)
//   1029..            internal-pool bitmaps, internal pool (space-manager bitmaps, CIBs, CABs)
//   then              file data (contiguous per file unless fragmentation is forced)
//   then              volume omap tree, catalog (file-system) tree, extent-reference tree
//   rest              free
// The layout follows what apfsck checks for a freshly made container (see docs/ramdisk.md).

export interface ApfsOptions {
  label: string;
  caseSensitive?: boolean;
  size?: bigint;
  role?: string;
  createdNs: bigint;
  fragmentBlocks?: number;
}

const BS = F.BLOCK_SIZE;
const BSn = BigInt(BS);
const XID = 1n;
const DESC_BASE = 1;
const DESC_BLOCKS = 8;
const DATA_BASE = DESC_BASE + DESC_BLOCKS;
const DATA_BLOCKS = 52;
const CPOINT_END = DATA_BASE + DATA_BLOCKS;

/**
 * First block of the fixed physical objects. apfsck (Debian's 2023 build) reports physical
 * object ids below 1024 as reserved, so containers of 8 MiB and more start them at block 1024
 * and leave blocks 61..1023 free; smaller ones pack them right after the checkpoint areas.
 */
function fixedBlocks(blockCount: number) {
  const base = blockCount >= 2048 ? Number(F.OID_RESERVED_COUNT) : CPOINT_END;
  return { NX_OMAP: base, NX_OMAP_ROOT: base + 1, VOL_SB: base + 2, VOL_OMAP: base + 3, SNAP_ROOT: base + 4, IP_BMAP_BASE: base + 5 };
}

// Object identifiers (ephemeral and virtual), as a freshly made container numbers them.
const SPACEMAN_OID = F.OID_RESERVED_COUNT;
const REAPER_OID = SPACEMAN_OID + 1n;
const VOL_OID = REAPER_OID + 1n;
const IP_FQ_OID = VOL_OID + 1n;
const MAIN_FQ_OID = IP_FQ_OID + 1n;
const FIRST_CAT_OID = MAIN_FQ_OID + 1n;

interface Inode {
  node: TreeNode;
  ino: bigint;
  parent: bigint;
  name: string;
  nameBytes: Uint8Array;
  children: Inode[];
  blocks: number;
  extents: { start: number; count: number }[];
}

const enc = new TextEncoder();

/**
 * Record keys and values are carved out of large shared buffers: a catalog has several records
 * per file, and one ArrayBuffer each would cost more in allocation and GC than the rest.
 */
class Arena {
  private chunk = new Uint8Array(0);
  private used = 0;
  alloc(n: number): Uint8Array {
    if (this.used + n > this.chunk.length) {
      this.chunk = new Uint8Array(Math.max(1 << 20, n));
      this.used = 0;
    }
    const b = this.chunk.subarray(this.used, this.used + n);
    this.used += n;
    return b;
  }
}

let arena = new Arena();
const bytes = (n: number): Uint8Array => arena.alloc(n);

/** Write obj_id_and_type (j_key_t) at `at`: the id in the low 60 bits, the type above. */
function putObjKey(b: Uint8Array, at: number, id: bigint | number, type: bigint): void {
  // Numbers, not BigInt arithmetic: a catalog has several keys per file.
  const n = Number(id);
  const lo = n % 0x100000000;
  const hi = ((n - lo) / 0x100000000) & 0x0fffffff;
  b[at] = lo & 0xff; b[at + 1] = (lo >>> 8) & 0xff; b[at + 2] = (lo >>> 16) & 0xff; b[at + 3] = lo >>> 24;
  const h = (hi | (Number(type) << 28)) >>> 0;
  b[at + 4] = h & 0xff; b[at + 5] = (h >>> 8) & 0xff; b[at + 6] = (h >>> 16) & 0xff; b[at + 7] = h >>> 24;
}

function objKeyBytes(id: bigint | number, type: bigint): Uint8Array {
  const b = bytes(8);
  putObjKey(b, 0, id, type);
  return b;
}

function header(b: Uint8Array, oid: bigint, type: number, subtype = 0): void {
  const dv = new DataView(b.buffer, b.byteOffset);
  dv.setBigUint64(8, oid, true);
  dv.setBigUint64(16, XID, true);
  dv.setUint32(24, type, true);
  dv.setUint32(28, subtype, true);
  sealObject(b);
}

function collect(root: DirNode, ci: boolean): Inode[] {
  const rootInode: Inode = { node: root, ino: F.ROOT_DIR_INO_NUM, parent: F.ROOT_DIR_PARENT, name: 'root', nameBytes: enc.encode('root'), children: [], blocks: 0, extents: [] };
  const all: Inode[] = [rootInode];
  let next = F.MIN_USER_INO_NUM;
  const stack: { dir: DirNode; ino: Inode; path: string; depth: number }[] = [{ dir: root, ino: rootInode, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { dir, ino, path, depth } = stack.pop()!;
    if (depth > 4096) throw new ImageInputError(`${path}: directories nested deeper than 4096`);
    const seen = new Map<string, string>();
    for (const c of dir.children) {
      const where = `${path}/${c.name}`;
      checkName(c.name, where);
      const nameBytes = enc.encode(c.name);
      if (nameBytes.length > 255) throw tooLong(where, c.name, nameBytes.length, 'UTF-8 bytes');
      const folded = foldName(c.name, ci);
      const clash = seen.get(folded);
      if (clash !== undefined) {
        throw new ImageInputError(`${path}/: names ${JSON.stringify(clash)} and ${JSON.stringify(c.name)} are the same on a ${ci ? 'case-insensitive' : 'case-sensitive'} APFS volume (names are normalization-insensitive)`);
      }
      seen.set(folded, c.name);
      const child: Inode = { node: c, ino: next++, parent: ino.ino, name: c.name, nameBytes, children: [], blocks: 0, extents: [] };
      ino.children.push(child);
      all.push(child);
      if (c.kind === 'dir') stack.push({ dir: c, ino: child, path: where, depth: depth + 1 });
    }
  }
  return all;
}

function xfields(fields: { type: number; flags: number; data: Uint8Array }[]): Uint8Array {
  const used = fields.reduce((s, f) => s + ((f.data.length + 7) & ~7), 0);
  const out = bytes(4 + 4 * fields.length + used);
  const dv = view(out);
  dv.setUint16(0, fields.length, true);
  dv.setUint16(2, used, true);
  let at = 4 + 4 * fields.length;
  fields.forEach((f, i) => {
    dv.setUint8(4 + 4 * i, f.type);
    dv.setUint8(5 + 4 * i, f.flags);
    dv.setUint16(6 + 4 * i, f.data.length, true);
    out.set(f.data, at);
    at += (f.data.length + 7) & ~7;
  });
  return out;
}

function inodeRecord(i: Inode, nameOverride?: string): KV {
  const n = i.node;
  const v = bytes(92);
  const dv = view(v);
  dv.setBigUint64(0, i.parent, true);
  dv.setBigUint64(8, i.ino, true); // private_id: the data stream's id is the inode's
  for (const o of [16, 24, 32, 40]) dv.setBigUint64(o, n.mtimeNs < 0n ? 0n : n.mtimeNs, true);
  dv.setUint32(56, n.kind === 'dir' ? i.children.length : 1, true); // nchildren / nlink
  dv.setUint32(72, n.uid >>> 0, true);
  dv.setUint32(76, n.gid >>> 0, true);
  dv.setUint16(80, modeOf(n), true);
  const fields: { type: number; flags: number; data: Uint8Array }[] = [{ type: F.INO_EXT_TYPE_NAME, flags: F.XF_DO_NOT_COPY, data: enc.encode((nameOverride ?? i.name) + '\0') }];
  const len = dataLength(n);
  if (n.kind === 'file' && len > 0n) {
    const ds = bytes(40);
    const d = view(ds);
    d.setBigUint64(0, len, true);
    d.setBigUint64(8, BigInt(i.blocks) * BSn, true);
    d.setBigUint64(24, len, true); // total_bytes_written
    fields.push({ type: F.INO_EXT_TYPE_DSTREAM, flags: F.XF_SYSTEM_FIELD, data: ds });
  }
  const xf = xfields(fields);
  const val = bytes(v.length + xf.length);
  val.set(v);
  val.set(xf, v.length);
  return { key: objKeyBytes(i.ino, F.APFS_TYPE_INODE), val };
}

function drecRecord(parent: bigint, name: string, nameBytes: Uint8Array, ino: bigint, dtype: number, dateNs: bigint, ci: boolean): KV {
  const key = bytes(12 + nameBytes.length + 1);
  const dv = view(key);
  putObjKey(key, 0, parent, F.APFS_TYPE_DIR_REC);
  dv.setUint32(8, ((nameHash(name, ci) << 10) | (nameBytes.length + 1)) >>> 0, true);
  key.set(nameBytes, 12);
  const val = bytes(18);
  const v = view(val);
  v.setBigUint64(0, ino, true);
  v.setBigUint64(8, dateNs < 0n ? 0n : dateNs, true);
  v.setUint16(16, dtype, true);
  return { key, val };
}

function xattrRecord(ino: bigint, name: string, value: Uint8Array, systemOwned: boolean): KV {
  const nb = enc.encode(name);
  if (nb.length === 0 || nb.length > 255) throw new ImageInputError(`extended attribute name ${JSON.stringify(name)} must be 1 to 255 UTF-8 bytes`);
  if (value.length > F.XATTR_MAX_EMBEDDED_SIZE) throw new ImageInputError(`extended attribute ${name} is ${value.length} bytes; APFS images hold embedded attributes up to ${F.XATTR_MAX_EMBEDDED_SIZE} bytes`);
  const key = bytes(10 + nb.length + 1);
  const dv = view(key);
  putObjKey(key, 0, ino, F.APFS_TYPE_XATTR);
  dv.setUint16(8, nb.length + 1, true);
  key.set(nb, 10);
  const val = bytes(4 + value.length);
  const v = view(val);
  v.setUint16(0, F.XATTR_DATA_EMBEDDED | (systemOwned ? F.XATTR_FILE_SYSTEM_OWNED : 0), true);
  v.setUint16(2, value.length, true);
  val.set(value, 4);
  return { key, val };
}

/** Catalog key order (APFS Reference "File-System Objects"): id, type, hash or offset, name. */
interface SortKey { kv: KV; idHi: number; idLo: number; type: number; numHi: number; numLo: number; name: Uint8Array | null }

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function sortKey(kv: KV): SortKey {
  const k = kv.key;
  const hi = u32(k, 4);
  const type = hi >>> 28;
  const sk: SortKey = { kv, idHi: hi & 0x0fffffff, idLo: u32(k, 0), type, numHi: 0, numLo: 0, name: null };
  if (type === Number(F.APFS_TYPE_DIR_REC)) {
    sk.numLo = (u32(k, 8) & ~0x3ff) >>> 0;
    sk.name = k.subarray(12);
  } else if (type === Number(F.APFS_TYPE_FILE_EXTENT)) {
    sk.numLo = u32(k, 8);
    sk.numHi = u32(k, 12);
  } else if (type === Number(F.APFS_TYPE_XATTR)) {
    sk.name = k.subarray(10);
  }
  return sk;
}

function sortCatalog(records: KV[]): KV[] {
  const keys = records.map(sortKey);
  keys.sort((a, b) =>
    a.idHi - b.idHi || a.idLo - b.idLo || a.type - b.type || a.numHi - b.numHi || a.numLo - b.numLo ||
    (a.name && b.name ? Buffer.compare(a.name, b.name) : 0));
  return keys.map((k) => k.kv);
}

function dtypeOf(n: TreeNode): number {
  return n.kind === 'dir' ? F.DT_DIR : n.kind === 'symlink' ? F.DT_LNK : F.DT_REG;
}

interface Trees {
  catalog: KV[];
  extentref: KV[];
  /** Values (file extents) and keys (extent references) holding a block number to relocate. */
  relocate: { bytes: Uint8Array; at: number }[];
}

function records(all: Inode[], ci: boolean, createdNs: bigint): Trees {
  const catalog: KV[] = [];
  const extentref: KV[] = [];
  const relocate: { bytes: Uint8Array; at: number }[] = [];
  const rootNode = all[0]!.node;
  // The root and the private directory hang off the root's parent (inode 1).
  catalog.push(drecRecord(F.ROOT_DIR_PARENT, 'root', enc.encode('root'), F.ROOT_DIR_INO_NUM, F.DT_DIR, rootNode.mtimeNs, ci));
  catalog.push(drecRecord(F.ROOT_DIR_PARENT, 'private-dir', enc.encode('private-dir'), F.PRIV_DIR_INO_NUM, F.DT_DIR, createdNs, ci));
  const priv: Inode = { node: { kind: 'dir', name: 'private-dir', children: [], perm: 0o755, uid: rootNode.uid, gid: rootNode.gid, mtimeNs: createdNs, xattrs: [] }, ino: F.PRIV_DIR_INO_NUM, parent: F.ROOT_DIR_PARENT, name: 'private-dir', nameBytes: enc.encode('private-dir'), children: [], blocks: 0, extents: [] };
  catalog.push(inodeRecord(priv));
  for (const i of all) {
    catalog.push(inodeRecord(i));
    for (const c of i.children) catalog.push(drecRecord(i.ino, c.name, c.nameBytes, c.ino, dtypeOf(c.node), c.node.mtimeNs, ci));
    for (const x of i.node.xattrs) {
      if (x.name === F.SYMLINK_EA_NAME) throw new ImageInputError(`${i.name}: the extended attribute ${F.SYMLINK_EA_NAME} is reserved for symlink targets`);
      catalog.push(xattrRecord(i.ino, x.name, x.value, false));
    }
    if (i.node.kind === 'symlink') {
      catalog.push(xattrRecord(i.ino, F.SYMLINK_EA_NAME, enc.encode(i.node.target + '\0'), true));
    }
    if (i.node.kind === 'file' && i.blocks > 0) {
      const refcnt = bytes(4);
      view(refcnt).setUint32(0, 1, true);
      catalog.push({ key: objKeyBytes(i.ino, F.APFS_TYPE_DSTREAM_ID), val: refcnt });
      let logical = 0n;
      for (const e of i.extents) {
        const key = bytes(16);
        const k = view(key);
        putObjKey(key, 0, i.ino, F.APFS_TYPE_FILE_EXTENT);
        k.setBigUint64(8, logical, true);
        const val = bytes(24);
        const v = view(val);
        v.setBigUint64(0, BigInt(e.count) * BSn, true);
        v.setBigUint64(8, BigInt(e.start), true);
        catalog.push({ key, val });
        relocate.push({ bytes: val, at: 8 });
        logical += BigInt(e.count) * BSn;
        const pkey = objKeyBytes(e.start, F.APFS_TYPE_EXTENT);
        const pval = bytes(20);
        const p = view(pval);
        p.setBigUint64(0, BigInt(e.count) | (F.KIND_NEW << F.PEXT_KIND_SHIFT), true);
        p.setBigUint64(8, i.ino, true); // owning data stream
        p.setUint32(16, 1, true);
        extentref.push({ key: pkey, val: pval });
        relocate.push({ bytes: pkey, at: 0 });
      }
    }
  }
  const sorted = sortCatalog(catalog);
  extentref.sort((a, b) => {
    const x = view(a.key).getBigUint64(0, true) & F.OBJ_ID_MASK;
    const y = view(b.key).getBigUint64(0, true) & F.OBJ_ID_MASK;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return { catalog: sorted, extentref, relocate };
}

const CATALOG_SPEC: TreeSpec = { subtype: F.OBJECT_TYPE_FSTREE, storage: F.OBJ_VIRTUAL, btFlags: F.BTREE_KV_NONALIGNED };
const EXTENTREF_SPEC: TreeSpec = { subtype: F.OBJECT_TYPE_BLOCKREFTREE, storage: F.OBJ_PHYSICAL, btFlags: F.BTREE_PHYSICAL | F.BTREE_KV_NONALIGNED };
const SNAP_SPEC: TreeSpec = { subtype: F.OBJECT_TYPE_SNAPMETATREE, storage: F.OBJ_PHYSICAL, btFlags: F.BTREE_PHYSICAL | F.BTREE_KV_NONALIGNED };
const OMAP_SPEC: TreeSpec = { subtype: F.OBJECT_TYPE_OMAP, storage: F.OBJ_PHYSICAL, fixed: { key: 16, val: 16 }, btFlags: F.BTREE_PHYSICAL };

function omapRecords(map: { oid: bigint; paddr: bigint }[]): KV[] {
  return map.map(({ oid, paddr }) => {
    const key = bytes(16);
    const k = view(key);
    k.setBigUint64(0, oid, true);
    k.setBigUint64(8, XID, true);
    const val = bytes(16);
    const v = view(val);
    v.setUint32(4, BS, true);
    v.setBigUint64(8, paddr, true);
    return { key, val };
  });
}

function omapPhys(block: number, rootBlock: number, manual: boolean): Uint8Array {
  const b = new Uint8Array(BS);
  const dv = new DataView(b.buffer);
  dv.setUint32(32, manual ? F.OMAP_MANUALLY_MANAGED : 0, true);
  dv.setUint32(40, F.OBJ_PHYSICAL | F.OBJECT_TYPE_BTREE, true);
  dv.setUint32(44, F.OBJ_PHYSICAL | F.OBJECT_TYPE_BTREE, true);
  dv.setBigUint64(48, BigInt(rootBlock), true);
  header(b, BigInt(block), F.OBJ_PHYSICAL | F.OBJECT_TYPE_OMAP);
  return b;
}

function uuidFrom(seed: string): Uint8Array {
  const h = createHash('sha256').update(seed).digest().subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x40; // version 4 layout (content-derived, not random)
  h[8] = (h[8]! & 0x3f) | 0x80;
  return new Uint8Array(h);
}

interface Layout {
  blockCount: number;
  geo: SpacemanGeometry;
  dataStart: number;
  treesStart: number;
  end: number;
  omapNodes: number;
  catNodes: number;
  extNodes: number;
  trees: Trees;
}

export function planApfs(root: DirNode, opts: ApfsOptions): ImagePlan {
  arena = new Arena();
  const ci = !opts.caseSensitive;
  const label = enc.encode(opts.label);
  if (label.length === 0 || label.length > 255) throw new ImageInputError(`volume label ${JSON.stringify(opts.label)} must be 1 to 255 UTF-8 bytes`);
  let role = 0;
  if (opts.role !== undefined) {
    const r = F.VOL_ROLES[opts.role.toLowerCase()];
    if (r === undefined) throw new ImageInputError(`unknown APFS volume role ${JSON.stringify(opts.role)}; known: ${Object.keys(F.VOL_ROLES).join(', ')}`);
    role = r;
  }
  const all = collect(root, ci);
  for (const i of all) {
    const len = i.node.kind === 'file' ? i.node.size : 0n;
    i.blocks = Number((len + BSn - 1n) / BSn);
  }
  const frag = opts.fragmentBlocks && opts.fragmentBlocks > 0 ? opts.fragmentBlocks : 0;

  // File data is laid out once, relative to the start of the data region; its place in the
  // container (after the internal pool, whose size depends on the container size) is added at
  // the end, so the trees are built and measured only once.
  let span = 0;
  for (const i of all) {
    const a = allocateRuns(i.blocks, span, frag);
    i.extents = a.runs;
    span = a.next;
  }
  const trees = records(all, ci, opts.createdNs);
  const catNodes = planTree(trees.catalog, CATALOG_SPEC).nodeCount;
  const omapNodes = planTree(omapRecords(Array.from({ length: catNodes }, () => ({ oid: 0n, paddr: 0n }))), OMAP_SPEC).nodeCount;
  const extNodes = planTree(trees.extentref, EXTENTREF_SPEC).nodeCount;
  const layoutFor = (blockCount: number): Layout => {
    const geo = spacemanGeometry(blockCount, fixedBlocks(blockCount).IP_BMAP_BASE);
    const dataStart = geo.ipBase + geo.ipBlocks;
    const treesStart = dataStart + span;
    return { blockCount, geo, dataStart, treesStart, end: treesStart + omapNodes + catNodes + extNodes, omapNodes, catNodes, extNodes, trees };
  };

  let L: Layout;
  const minBlocks = F.NX_MINIMUM_CONTAINER_SIZE / BS;
  if (opts.size !== undefined) {
    if (opts.size % BSn !== 0n) throw new ImageInputError(`--size ${opts.size} is not a multiple of the ${BS}-byte block size`);
    if (opts.size < BigInt(F.NX_MINIMUM_CONTAINER_SIZE)) throw new ImageInputError(`--size ${opts.size} is below the APFS minimum container size of ${F.NX_MINIMUM_CONTAINER_SIZE} bytes (NX_MINIMUM_CONTAINER_SIZE)`);
    if (opts.size / BSn > 0xffffffffn) throw new ImageInputError(`--size ${opts.size} is too large`);
    L = layoutFor(Number(opts.size / BSn));
    if (L.end > L.blockCount) throw new ImageInputError(`image too small: the tree needs ${BigInt(L.end) * BSn} bytes (${L.end} blocks of ${BS}), --size gives ${opts.size}`);
  } else {
    const dataBlocks = all.reduce((s, i) => s + i.blocks, 0);
    let guess = Math.max(minBlocks, dataBlocks * (frag ? 2 : 1) + 256);
    for (;;) {
      L = layoutFor(guess);
      if (L.end <= L.blockCount) break;
      guess = Math.ceil(L.end * 1.02) + 256;
    }
    const slack = Math.max(256, Math.ceil(L.end * 0.05));
    const total = Math.max(minBlocks, Math.ceil((L.end + slack) / 256) * 256);
    L = layoutFor(total);
  }
  return emit(all, L, opts, ci, role, label);
}

function emit(all: Inode[], L: Layout, opts: ApfsOptions, ci: boolean, role: number, label: Uint8Array): ImagePlan {
  const { NX_OMAP, NX_OMAP_ROOT, VOL_SB, VOL_OMAP, SNAP_ROOT, IP_BMAP_BASE } = fixedBlocks(L.blockCount);
  for (const i of all) for (const e of i.extents) e.start += L.dataStart;
  for (const r of L.trees.relocate) {
    const dv = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.length);
    dv.setBigUint64(r.at, dv.getBigUint64(r.at, true) + BigInt(L.dataStart), true);
  }
  const meta: MetaPiece[] = [];
  const data: DataPiece[] = [];
  const put = (block: number, bytes: Uint8Array) => meta.push({ offset: BigInt(block) * BSn, bytes });
  let dataBytes = 0n;

  // Trees: volume omap nodes, then catalog nodes (virtual oids), then extent-reference nodes.
  let blk = L.treesStart;
  const omapBlocks = Array.from({ length: L.omapNodes }, () => blk++);
  const catBlocks = Array.from({ length: L.catNodes }, () => blk++);
  const extBlocks = Array.from({ length: L.extNodes }, () => blk++);
  const catOids = catBlocks.map((_, i) => FIRST_CAT_OID + BigInt(i));
  const cat = planTree(L.trees.catalog, CATALOG_SPEC);
  cat.build(catOids).forEach((b, i) => put(catBlocks[i]!, b));
  const volOmap = planTree(omapRecords(catOids.map((oid, i) => ({ oid, paddr: BigInt(catBlocks[i]!) }))), OMAP_SPEC);
  volOmap.build(omapBlocks.map(BigInt)).forEach((b, i) => put(omapBlocks[i]!, b));
  const ext = planTree(L.trees.extentref, EXTENTREF_SPEC);
  ext.build(extBlocks.map(BigInt)).forEach((b, i) => put(extBlocks[i]!, b));
  put(SNAP_ROOT, planTree([], SNAP_SPEC).build([BigInt(SNAP_ROOT)])[0]!);
  put(VOL_OMAP, omapPhys(VOL_OMAP, omapBlocks[omapBlocks.length - 1]!, false));
  const nxOmapRoot = planTree(omapRecords([{ oid: VOL_OID, paddr: BigInt(VOL_SB) }]), OMAP_SPEC).build([BigInt(NX_OMAP_ROOT)])[0]!;
  put(NX_OMAP_ROOT, nxOmapRoot);
  put(NX_OMAP, omapPhys(NX_OMAP, NX_OMAP_ROOT, true));

  // File data.
  let dataBlocks = 0;
  let files = 0;
  let dirs = 0;
  let links = 0;
  for (const i of all) {
    if (i.node.kind === 'dir') { if (i.ino >= F.MIN_USER_INO_NUM) dirs++; continue; }
    if (i.node.kind === 'symlink') { links++; continue; }
    files++;
    const len = dataLength(i.node);
    dataBlocks += i.blocks;
    if (len > 0n) {
      data.push(...dataPieces(contentOf(i.node), len, i.extents.map((e) => ({ offset: BigInt(e.start) * BSn, bytes: BigInt(e.count) * BSn }))));
      dataBytes += len;
    }
  }

  // Allocation: every block written above plus the data extents.
  const used: [number, number][] = [[0, 1], [DESC_BASE, DESC_BLOCKS], [DATA_BASE, DATA_BLOCKS], [NX_OMAP, 5], [IP_BMAP_BASE, L.geo.ipBmapBlocks], [L.geo.ipBase, L.geo.ipBlocks], [L.treesStart, L.end - L.treesStart]];
  for (const i of all) for (const e of i.extents) used.push([e.start, e.count]);
  const sm = buildSpaceman(L.geo, L.blockCount, used, L.end, {
    spacemanOid: SPACEMAN_OID, ipFqOid: IP_FQ_OID, mainFqOid: MAIN_FQ_OID, ipBmapBase: IP_BMAP_BASE, dataBase: DATA_BASE, xid: XID,
  });
  for (const p of sm.pieces) put(p.block, p.bytes);

  // Volume superblock.
  const allocCount = 1 + L.omapNodes + L.catNodes + L.extNodes + 1 + dataBlocks;
  const vsb = new Uint8Array(BS);
  const v = new DataView(vsb.buffer);
  v.setUint32(32, F.APFS_MAGIC, true);
  v.setUint32(36, 0, true); // apfs_fs_index
  v.setBigUint64(40, F.APFS_FEATURE_HARDLINK_MAP_RECORDS, true);
  v.setBigUint64(56, ci ? F.APFS_INCOMPAT_CASE_INSENSITIVE : F.APFS_INCOMPAT_NORMALIZATION_INSENSITIVE, true);
  v.setBigUint64(64, opts.createdNs, true); // unmount time
  v.setBigUint64(88, BigInt(allocCount), true);
  v.setUint16(96, 5, true); // meta_crypto major version
  v.setUint32(104, F.PROTECTION_CLASS_F, true);
  v.setUint16(112, 1, true); // key_revision
  v.setUint32(116, F.OBJ_VIRTUAL | F.OBJECT_TYPE_BTREE, true);
  v.setUint32(120, F.OBJ_PHYSICAL | F.OBJECT_TYPE_BTREE, true);
  v.setUint32(124, F.OBJ_PHYSICAL | F.OBJECT_TYPE_BTREE, true);
  v.setBigUint64(128, BigInt(VOL_OMAP), true);
  v.setBigUint64(136, FIRST_CAT_OID + BigInt(L.catNodes - 1), true); // root node is written last
  v.setBigUint64(144, BigInt(extBlocks[extBlocks.length - 1]!), true);
  v.setBigUint64(152, BigInt(SNAP_ROOT), true);
  v.setBigUint64(176, all.reduce((m, i) => (i.ino > m ? i.ino : m), F.MIN_USER_INO_NUM - 1n) + 1n, true);
  v.setBigUint64(184, BigInt(files), true);
  v.setBigUint64(192, BigInt(dirs), true);
  v.setBigUint64(200, BigInt(links), true);
  v.setBigUint64(224, BigInt(allocCount), true); // total_blocks_alloced
  vsb.set(uuidFrom(`volume:${opts.label}:${L.trees.catalog.length}:${dataBytes}:${opts.createdNs}`), 240);
  v.setBigUint64(256, opts.createdNs, true); // last_mod_time
  v.setBigUint64(264, F.APFS_FS_UNENCRYPTED, true);
  vsb.set(enc.encode('m1prep ramdisk'), 272); // formatted_by.id
  v.setBigUint64(304, opts.createdNs, true);
  v.setBigUint64(312, XID, true);
  vsb.set(label, 704);
  v.setUint32(960, F.MIN_DOC_ID, true);
  v.setUint16(964, role, true);
  header(vsb, VOL_OID, F.OBJ_VIRTUAL | F.OBJECT_TYPE_FS);
  put(VOL_SB, vsb);

  // Checkpoint map (block 1) and container superblock (block 0, copy at block 2).
  const map = new Uint8Array(BS);
  const m = new DataView(map.buffer);
  m.setUint32(32, F.CHECKPOINT_MAP_LAST, true);
  const eph = [
    { type: F.OBJ_EPHEMERAL | F.OBJECT_TYPE_NX_REAPER, sub: 0, size: BS, oid: REAPER_OID, paddr: DATA_BASE },
    { type: F.OBJ_EPHEMERAL | F.OBJECT_TYPE_SPACEMAN, sub: 0, size: sm.spacemanBlocks * BS, oid: SPACEMAN_OID, paddr: sm.spacemanBlock },
    { type: F.OBJ_EPHEMERAL | F.OBJECT_TYPE_BTREE, sub: F.OBJECT_TYPE_SPACEMAN_FREE_QUEUE, size: BS, oid: IP_FQ_OID, paddr: sm.ipFqBlock },
    { type: F.OBJ_EPHEMERAL | F.OBJECT_TYPE_BTREE, sub: F.OBJECT_TYPE_SPACEMAN_FREE_QUEUE, size: BS, oid: MAIN_FQ_OID, paddr: sm.mainFqBlock },
  ];
  m.setUint32(36, eph.length, true);
  eph.forEach((e, i) => {
    const o = 40 + 40 * i;
    m.setUint32(o, e.type, true);
    m.setUint32(o + 4, e.sub, true);
    m.setUint32(o + 8, e.size, true);
    m.setBigUint64(o + 24, e.oid, true);
    m.setBigUint64(o + 32, BigInt(e.paddr), true);
  });
  header(map, BigInt(DESC_BASE), F.OBJ_PHYSICAL | F.OBJECT_TYPE_CHECKPOINT_MAP);
  put(DESC_BASE, map);

  const nx = new Uint8Array(BS);
  const n = new DataView(nx.buffer);
  const size = BigInt(L.blockCount) * BSn;
  n.setUint32(32, F.NX_MAGIC, true);
  n.setUint32(36, BS, true);
  n.setBigUint64(40, BigInt(L.blockCount), true);
  n.setBigUint64(64, F.NX_INCOMPAT_VERSION2, true);
  nx.set(uuidFrom(`container:${opts.label}:${L.blockCount}:${opts.createdNs}:${L.trees.catalog.length}:${dataBytes}`), 72);
  n.setBigUint64(88, FIRST_CAT_OID + BigInt(L.catNodes), true); // nx_next_oid
  n.setBigUint64(96, XID + 1n, true); // nx_next_xid
  n.setUint32(104, DESC_BLOCKS, true);
  n.setUint32(108, DATA_BLOCKS, true);
  n.setBigUint64(112, BigInt(DESC_BASE), true);
  n.setBigUint64(120, BigInt(DATA_BASE), true);
  n.setUint32(128, 2, true); // xp_desc_next
  n.setUint32(132, sm.ephemeralBlocks, true); // xp_data_next
  n.setUint32(136, 0, true); // xp_desc_index
  n.setUint32(140, 2, true); // xp_desc_len
  n.setUint32(144, 0, true); // xp_data_index
  n.setUint32(148, sm.ephemeralBlocks, true); // xp_data_len
  n.setBigUint64(152, SPACEMAN_OID, true);
  n.setBigUint64(160, BigInt(NX_OMAP), true);
  n.setBigUint64(168, REAPER_OID, true);
  const maxVols = Number((size + (512n << 20n) - 1n) / (512n << 20n));
  n.setUint32(180, Math.min(F.NX_MAX_FILE_SYSTEMS, maxVols), true);
  n.setBigUint64(184, VOL_OID, true); // nx_fs_oid[0]
  // Ephemeral info: small containers (< 128 MiB) state the main free queue's node limit as the
  // minimum block count, as macOS's newfs_apfs does (see the corpus image); larger ones 8.
  const minBlocks = size < 128n << 20n ? BigInt(sm.mainFqNodeLimit) : BigInt(F.NX_EPH_MIN_BLOCK_COUNT);
  n.setBigUint64(0x520, (minBlocks << 32n) | (BigInt(F.NX_MAX_FILE_SYSTEM_EPH_STRUCTS) << 16n) | BigInt(F.NX_EPH_INFO_VERSION_1), true);
  header(nx, F.OID_NX_SUPERBLOCK, F.OBJ_EPHEMERAL | F.OBJECT_TYPE_NX_SUPERBLOCK);
  put(0, nx);
  put(DESC_BASE + 1, nx);
  return { size, meta, data, dataBytes };
}
