import { ImageInputError } from '../input-error.js';
import { BT_HEADER_REC_SIZE, BT_USER_DATA_SIZE, kBTHeaderNode, kBTIndexNode, kBTLeafNode, NODE_DESCRIPTOR_SIZE } from './format.js';

// Builds a complete HFS+ B-tree file (TN1150 "B-Trees") from records already in key order:
// node 0 is the header node, then the leaves left to right, then each index level up to the
// root. Nodes are packed full; the map record marks every node used (the tree is written once).

export interface BRecord {
  /** The key as stored, starting with its u16 keyLength. */
  key: Uint8Array;
  data: Uint8Array;
}

export interface BTreeSpec {
  nodeSize: number;
  maxKeyLength: number;
  /** kBTBigKeysMask | kBTVariableIndexKeysMask as the tree requires. */
  attributes: number;
  keyCompareType: number;
  /** Index keys keep their own length (variable) or are padded to maxKeyLength. */
  variableIndexKeys: boolean;
  clumpSize: number;
}

export interface BuiltTree {
  bytes: Uint8Array;
  totalNodes: number;
}

function nodeFits(used: number, count: number, nodeSize: number): boolean {
  return NODE_DESCRIPTOR_SIZE + used + 2 * (count + 1) <= nodeSize;
}

/** Greedy packing of record byte sizes into nodes: indices of the first record of each node. */
function pack(sizes: number[], nodeSize: number): number[] {
  const starts: number[] = [];
  let used = 0;
  let count = 0;
  for (let i = 0; i < sizes.length; i++) {
    if (count === 0 || !nodeFits(used + sizes[i]!, count + 1, nodeSize)) {
      if (!nodeFits(sizes[i]!, 1, nodeSize)) throw new ImageInputError(`a B-tree record of ${sizes[i]} bytes does not fit a ${nodeSize}-byte node`);
      starts.push(i);
      used = 0;
      count = 0;
    }
    used += sizes[i]!;
    count++;
  }
  return starts;
}

function writeNode(out: Uint8Array, nodeNo: number, nodeSize: number, kind: number, height: number, fLink: number, bLink: number, recs: Uint8Array[]): void {
  const base = nodeNo * nodeSize;
  const dv = new DataView(out.buffer, out.byteOffset + base, nodeSize);
  dv.setUint32(0, fLink);
  dv.setUint32(4, bLink);
  dv.setInt8(8, kind);
  dv.setUint8(9, height);
  dv.setUint16(10, recs.length);
  let off = NODE_DESCRIPTOR_SIZE;
  recs.forEach((r, i) => {
    out.set(r, base + off);
    dv.setUint16(nodeSize - 2 * (i + 1), off);
    off += r.length;
  });
  dv.setUint16(nodeSize - 2 * (recs.length + 1), off);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const r = new Uint8Array(a.length + b.length);
  r.set(a);
  r.set(b, a.length);
  return r;
}

function indexKey(key: Uint8Array, spec: BTreeSpec): Uint8Array {
  if (spec.variableIndexKeys) return key;
  const k = new Uint8Array(2 + spec.maxKeyLength);
  k.set(key.subarray(0, Math.min(key.length, k.length)));
  new DataView(k.buffer).setUint16(0, spec.maxKeyLength);
  return k;
}

interface Level {
  firstNode: number;
  groups: Uint8Array[][];
}

export function buildBTree(records: BRecord[], spec: BTreeSpec): BuiltTree {
  const { nodeSize } = spec;
  const levels: Level[] = [];
  let nextNode = 1;
  let current = records.map((r) => concat(r.key, r.data));
  let firstKeys = records.map((r) => r.key);
  while (current.length > 0) {
    const starts = pack(current.map((r) => r.length), nodeSize);
    const groups = starts.map((s, i) => current.slice(s, starts[i + 1] ?? current.length));
    const level: Level = { firstNode: nextNode, groups };
    levels.push(level);
    nextNode += groups.length;
    if (groups.length === 1) break;
    const ptr = (n: number) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n); return b; };
    const keys = starts.map((s) => indexKey(firstKeys[s]!, spec));
    current = keys.map((k, i) => concat(k, ptr(level.firstNode + i)));
    firstKeys = keys;
  }
  const totalNodes = nextNode;
  const mapBytes = nodeSize - NODE_DESCRIPTOR_SIZE - BT_HEADER_REC_SIZE - BT_USER_DATA_SIZE - 8;
  if (totalNodes > mapBytes * 8) throw new ImageInputError(`B-tree needs ${totalNodes} nodes, more than one header map holds (${mapBytes * 8})`);
  const out = new Uint8Array(totalNodes * nodeSize);
  levels.forEach((lv, depthIndex) => {
    const isLeaf = depthIndex === 0;
    lv.groups.forEach((g, i) => {
      const no = lv.firstNode + i;
      const fLink = i + 1 < lv.groups.length ? no + 1 : 0;
      const bLink = i > 0 ? no - 1 : 0;
      writeNode(out, no, nodeSize, isLeaf ? kBTLeafNode : kBTIndexNode, depthIndex + 1, fLink, bLink, g);
    });
  });
  // Header node: BTHeaderRec, the user data record, the map record.
  const hdr = new Uint8Array(BT_HEADER_REC_SIZE);
  const h = new DataView(hdr.buffer);
  const leaves = levels[0];
  const root = levels[levels.length - 1];
  h.setUint16(0, levels.length); // treeDepth
  h.setUint32(2, root ? root.firstNode : 0); // rootNode
  h.setUint32(6, records.length); // leafRecords
  h.setUint32(10, leaves ? leaves.firstNode : 0); // firstLeafNode
  h.setUint32(14, leaves ? leaves.firstNode + leaves.groups.length - 1 : 0); // lastLeafNode
  h.setUint16(18, nodeSize);
  h.setUint16(20, spec.maxKeyLength);
  h.setUint32(22, totalNodes);
  h.setUint32(26, 0); // freeNodes
  h.setUint32(32, spec.clumpSize);
  h.setUint8(36, 0); // btreeType: kHFSBTreeType
  h.setUint8(37, spec.keyCompareType);
  h.setUint32(38, spec.attributes);
  const map = new Uint8Array(mapBytes);
  for (let n = 0; n < totalNodes; n++) map[n >> 3]! |= 0x80 >> (n & 7);
  writeNode(out, 0, nodeSize, kBTHeaderNode, 0, 0, 0, [hdr, new Uint8Array(BT_USER_DATA_SIZE), map]);
  return { bytes: out, totalNodes };
}
