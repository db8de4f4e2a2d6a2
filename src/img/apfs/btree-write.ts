import { ImageInputError } from '../input-error.js';
import { sealObject } from './checksum.js';
import * as F from './format.js';

// Builds an APFS B-tree (APFS Reference, "B-Trees") from records already in key order. Nodes
// are packed full: table of contents, keys packed after it, free space, values packed against
// the end (before the btree_info footer in the root). Child pointers are the children's object
// identifiers: block numbers in physical trees, virtual oids (mapped by an omap) otherwise.

export interface KV {
  key: Uint8Array;
  val: Uint8Array;
}

export interface TreeSpec {
  subtype: number;
  /** OBJ_PHYSICAL or OBJ_VIRTUAL (node storage). */
  storage: number;
  /** Fixed key/value sizes (omap: 16/16), or undefined for variable-size records. */
  fixed?: { key: number; val: number };
  /** bt_flags of the footer. */
  btFlags: number;
  /** Free queues state their fixed key/value sizes as the longest even when empty. */
  alwaysLongest?: boolean;
}

export interface BuiltNode {
  oid: bigint;
  /** Index into the caller's block allocation (nodes are returned in writing order). */
  bytes: Uint8Array;
}

interface NodePlan {
  level: number;
  records: KV[];
}

const BS = F.BLOCK_SIZE;

function entrySize(r: KV, spec: TreeSpec, leaf: boolean): number {
  if (spec.fixed) return spec.fixed.key + (leaf ? spec.fixed.val : 8);
  return 8 + r.key.length + r.val.length;
}

/**
 * Table of contents of a fixed-size node: preallocated for as many entries as a node holds,
 * counting the whole node (the root's footer is ignored), as Apple sizes it and apfsck checks.
 */
function fixedTocLen(spec: TreeSpec, leaf: boolean): number {
  const f = spec.fixed!;
  const count = Math.floor((BS - F.BTREE_NODE_HEADER) / (f.key + (leaf ? f.val : 8) + 4));
  return count * 4;
}

function capacity(root: boolean, spec: TreeSpec = { subtype: 0, storage: 0, btFlags: 0 }, leaf = true): number {
  const toc = spec.fixed ? fixedTocLen(spec, leaf) : 0;
  return BS - F.BTREE_NODE_HEADER - (root ? F.BTREE_INFO_SIZE : 0) - toc;
}

function pack(records: KV[], spec: TreeSpec, leaf: boolean): KV[][] {
  const groups: KV[][] = [];
  let cur: KV[] = [];
  let used = 0;
  const cap = capacity(false, spec, leaf);
  for (const r of records) {
    const s = entrySize(r, spec, leaf);
    if (s > capacity(true, spec, leaf)) throw new ImageInputError(`an APFS B-tree record of ${s} bytes does not fit a node`);
    if (cur.length > 0 && used + s > cap) {
      groups.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(r);
    used += s;
  }
  if (cur.length > 0 || groups.length === 0) groups.push(cur);
  return groups;
}

function fitsRoot(records: KV[], spec: TreeSpec, leaf: boolean): boolean {
  // A variable-size node keeps at least one table entry even when empty.
  const minToc = spec.fixed || records.length > 0 ? 0 : 8;
  return records.reduce((s, r) => s + entrySize(r, spec, leaf), 0) + minToc <= capacity(true, spec, leaf);
}

/** The shape of the tree: levels from the leaves up, each a list of nodes. */
function shape(records: KV[], spec: TreeSpec): NodePlan[][] {
  if (fitsRoot(records, spec, true)) return [[{ level: 0, records }]];
  const levels: NodePlan[][] = [];
  let groups = pack(records, spec, true).map((g) => ({ level: 0, records: g }));
  levels.push(groups);
  for (let level = 1; ; level++) {
    // Index records: the first key of each child; the child pointer is filled in later.
    const index = groups.map((g) => ({ key: g.records[0]!.key, val: new Uint8Array(8) }));
    if (fitsRoot(index, spec, false)) {
      levels.push([{ level, records: index }]);
      return levels;
    }
    groups = pack(index, spec, false).map((g) => ({ level, records: g }));
    levels.push(groups);
  }
}

export interface TreeLayout {
  nodeCount: number;
  /** Writes the nodes given their oids (in order: leaves first, root last). */
  build(oids: bigint[]): Uint8Array[];
}

/** Plan a tree over `records`; the caller decides where its `nodeCount` nodes live. */
export function planTree(records: KV[], spec: TreeSpec): TreeLayout {
  const levels = shape(records, spec);
  const flat = levels.flat();
  return {
    nodeCount: flat.length,
    build(oids: bigint[]): Uint8Array[] {
      // Fill in child pointers level by level.
      let childIndex = 0;
      for (let li = 1; li < levels.length; li++) {
        const childCount = levels[li - 1]!.length;
        const base = childIndex;
        let k = 0;
        for (const node of levels[li]!) {
          for (const r of node.records) {
            const v = new Uint8Array(8);
            new DataView(v.buffer).setBigUint64(0, oids[base + k]!, true);
            r.val = v;
            k++;
          }
        }
        if (k !== childCount) throw new Error('index records do not match children');
        childIndex += childCount;
      }
      const longestKey = records.reduce((m, r) => Math.max(m, r.key.length), 0);
      const longestVal = records.reduce((m, r) => Math.max(m, r.val.length), 0);
      return flat.map((node, i) => writeNode(node, oids[i]!, i === flat.length - 1, spec, {
        keyCount: records.length, nodeCount: flat.length, longestKey, longestVal,
      }));
    },
  };
}

interface FooterInfo { keyCount: number; nodeCount: number; longestKey: number; longestVal: number }

function writeNode(node: NodePlan, oid: bigint, isRoot: boolean, spec: TreeSpec, info: FooterInfo): Uint8Array {
  const b = new Uint8Array(BS);
  const dv = new DataView(b.buffer);
  const leaf = node.level === 0;
  const n = node.records.length;
  const tocEntry = spec.fixed ? 4 : 8;
  const tocLen = spec.fixed ? fixedTocLen(spec, leaf) : Math.max(1, n) * tocEntry;
  const keyStart = F.BTREE_NODE_HEADER + tocLen;
  const valEnd = BS - (isRoot ? F.BTREE_INFO_SIZE : 0);
  let k = 0;
  let v = 0;
  node.records.forEach((r, i) => {
    const klen = spec.fixed ? spec.fixed.key : r.key.length;
    const vlen = spec.fixed ? (leaf ? spec.fixed.val : 8) : r.val.length;
    b.set(r.key.subarray(0, klen), keyStart + k);
    v += vlen;
    b.set(r.val.subarray(0, vlen), valEnd - v);
    const t = F.BTREE_NODE_HEADER + i * tocEntry;
    if (spec.fixed) {
      dv.setUint16(t, k, true);
      dv.setUint16(t + 2, v, true);
    } else {
      dv.setUint16(t, k, true);
      dv.setUint16(t + 2, klen, true);
      dv.setUint16(t + 4, v, true);
      dv.setUint16(t + 6, vlen, true);
    }
    k += klen;
  });
  const free = valEnd - v - (keyStart + k);
  if (free < 0) throw new Error('APFS node overflow');
  dv.setBigUint64(8, oid, true);
  dv.setBigUint64(16, 1n, true); // o_xid
  dv.setUint32(24, (isRoot ? F.OBJECT_TYPE_BTREE : F.OBJECT_TYPE_BTREE_NODE) | spec.storage, true);
  dv.setUint32(28, spec.subtype, true);
  dv.setUint16(32, (isRoot ? F.BTNODE_ROOT : 0) | (leaf ? F.BTNODE_LEAF : 0) | (spec.fixed ? F.BTNODE_FIXED_KV_SIZE : 0), true);
  dv.setUint16(34, node.level, true);
  dv.setUint32(36, n, true);
  dv.setUint16(40, 0, true); // table_space.off
  dv.setUint16(42, tocLen, true);
  dv.setUint16(44, k, true); // free_space.off (from the key area)
  dv.setUint16(46, free, true);
  dv.setUint16(48, F.BTOFF_INVALID, true);
  dv.setUint16(52, F.BTOFF_INVALID, true);
  if (isRoot) {
    const o = BS - F.BTREE_INFO_SIZE;
    dv.setUint32(o, spec.btFlags, true);
    dv.setUint32(o + 4, BS, true);
    dv.setUint32(o + 8, spec.fixed?.key ?? 0, true);
    dv.setUint32(o + 12, spec.fixed?.val ?? 0, true);
    dv.setUint32(o + 16, spec.fixed ? (info.keyCount || spec.alwaysLongest ? spec.fixed.key : 0) : info.longestKey, true);
    dv.setUint32(o + 20, spec.fixed ? (info.keyCount || spec.alwaysLongest ? spec.fixed.val : 0) : info.longestVal, true);
    dv.setBigUint64(o + 24, BigInt(info.keyCount), true);
    dv.setBigUint64(o + 32, BigInt(info.nodeCount), true);
  }
  sealObject(b);
  return b;
}
