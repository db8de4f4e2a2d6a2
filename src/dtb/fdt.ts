import { FormatError } from '../errors.js';

// Flattened Device Tree (devicetree specification v0.4, chapter 5), big-endian:
//   header (40 bytes, magic 0xd00dfeed), memory reservation block ({u64 address, u64 size} pairs
//   ending with a zero pair), structure block (tokens FDT_BEGIN_NODE name, FDT_PROP len nameoff
//   value, FDT_END_NODE, FDT_NOP, FDT_END; 4-byte aligned), strings block (property names).
// We write version 17 (last compatible 16) laid out the way dtc does, so that dtc's own blobs
// round-trip byte for byte: header, reservations, structure, then strings.

export const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
const HEADER_SIZE = 40;
const MAX_DEPTH = 64;

export interface FdtProperty {
  name: string;
  value: Uint8Array;
}

export interface FdtNode {
  /** "name@unit"; the root's is "". */
  name: string;
  properties: FdtProperty[];
  children: FdtNode[];
}

export interface MemReserve {
  address: bigint;
  size: bigint;
}

export interface Fdt {
  root: FdtNode;
  memReserve: MemReserve[];
  bootCpuId: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function fail(off: number, detail: string, path?: string): never {
  throw new FormatError('FDT', BigInt(off), path === undefined ? detail : `${detail} (in node ${path || '/'})`);
}

export function looksLikeFdt(b: Uint8Array): boolean {
  return b.length >= 4 && new DataView(b.buffer, b.byteOffset, 4).getUint32(0) === FDT_MAGIC;
}

/** Parse an FDT blob. Throws FormatError (structure "FDT", offset, node path) on bad input. */
export function parseFdt(b: Uint8Array): Fdt {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < HEADER_SIZE) fail(0, `header needs ${HEADER_SIZE} bytes, the file has ${b.length}`);
  if (dv.getUint32(0) !== FDT_MAGIC) fail(0, `bad magic 0x${dv.getUint32(0).toString(16)} (want 0xd00dfeed)`);
  const totalSize = dv.getUint32(4);
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  const offRsv = dv.getUint32(16);
  const version = dv.getUint32(20);
  const lastComp = dv.getUint32(24);
  const bootCpuId = dv.getUint32(28);
  const sizeStrings = dv.getUint32(32);
  const sizeStruct = version >= 17 ? dv.getUint32(36) : totalSize - offStruct;
  if (version < 16 || lastComp > 17) fail(20, `version ${version} (last compatible ${lastComp}) is not supported (16 or 17)`);
  if (totalSize > b.length) fail(4, `totalsize ${totalSize} is larger than the file (${b.length})`);
  const inside = (off: number, size: number, what: string, at: number) => {
    if (off > totalSize || size > totalSize - off) fail(at, `${what} [${off}, ${off + size}) lies outside totalsize ${totalSize}`);
  };
  inside(offStruct, sizeStruct, 'structure block', 8);
  inside(offStrings, sizeStrings, 'strings block', 12);
  if (offRsv % 8 !== 0 || offRsv < HEADER_SIZE) fail(16, `memory reservation block offset ${offRsv} is not 8-aligned after the header`);

  const memReserve: MemReserve[] = [];
  for (let p = offRsv; ; p += 16) {
    if (p + 16 > totalSize) fail(p, 'memory reservation block has no terminating entry');
    const address = dv.getBigUint64(p);
    const size = dv.getBigUint64(p + 8);
    if (address === 0n && size === 0n) break;
    memReserve.push({ address, size });
  }

  const structEnd = offStruct + sizeStruct;
  const names = new Map<number, string>();
  const nameAt = (nameoff: number, at: number, path: string): string => {
    const known = names.get(nameoff);
    if (known !== undefined) return known;
    if (nameoff >= sizeStrings) fail(at, `property name offset ${nameoff} is outside the strings block (${sizeStrings} bytes)`, path);
    const start = offStrings + nameoff;
    const end = b.subarray(start, offStrings + sizeStrings).indexOf(0);
    if (end < 0) fail(start, 'property name has no NUL before the end of the strings block', path);
    const s = utf8.decode(b.subarray(start, start + end));
    names.set(nameoff, s);
    return s;
  };

  let p = offStruct;
  const token = (): number => {
    if (p + 4 > structEnd) fail(p, 'structure block ends without FDT_END');
    const t = dv.getUint32(p);
    p += 4;
    return t;
  };
  const stack: FdtNode[] = [];
  const pathOf = () => stack.map((n) => n.name).join('/');
  let root: FdtNode | undefined;
  for (;;) {
    const at = p;
    const t = token();
    if (t === FDT_NOP) continue;
    if (t === FDT_BEGIN_NODE) {
      if (root && stack.length === 0) fail(at, 'a second root node follows the first');
      if (stack.length >= MAX_DEPTH) fail(at, `nodes nested deeper than ${MAX_DEPTH}`, pathOf());
      const end = b.subarray(p, structEnd).indexOf(0);
      if (end < 0) fail(p, 'node name has no NUL before the end of the structure block', pathOf());
      const node: FdtNode = { name: utf8.decode(b.subarray(p, p + end)), properties: [], children: [] };
      p = (p + end + 1 + 3) & ~3;
      if (stack.length) stack[stack.length - 1]!.children.push(node);
      else root = node;
      stack.push(node);
    } else if (t === FDT_END_NODE) {
      if (!stack.length) fail(at, 'FDT_END_NODE without an open node');
      stack.pop();
    } else if (t === FDT_PROP) {
      if (!stack.length) fail(at, 'property outside any node');
      if (p + 8 > structEnd) fail(p, 'property header runs past the structure block', pathOf());
      const len = dv.getUint32(p);
      const nameoff = dv.getUint32(p + 4);
      p += 8;
      if (len > structEnd - p) fail(at + 4, `property is ${len} bytes, only ${structEnd - p} left in the structure block`, pathOf());
      const name = nameAt(nameoff, at + 8, pathOf());
      stack[stack.length - 1]!.properties.push({ name, value: b.subarray(p, p + len) });
      p = (p + len + 3) & ~3;
    } else if (t === FDT_END) {
      if (stack.length) fail(at, `FDT_END inside an open node`, pathOf());
      break;
    } else {
      fail(at, `unknown structure token 0x${t.toString(16)}`, pathOf());
    }
  }
  if (!root) fail(offStruct, 'no root node');
  return { root, memReserve, bootCpuId };
}

/**
 * The strings block as dtc builds it (flattree.c stringtable_insert): a name is reused wherever
 * it appears in the table followed by NUL, i.e. as the suffix of an earlier name ("cells" inside
 * "#size-cells"), else appended. The first such place is the earliest inserted name ending with
 * it; short suffixes are indexed directly, longer ones through their last SHORT characters.
 */
const SHORT = 8;
class StringTable {
  private text = '';
  private readonly known = new Map<string, number>();
  /** Every suffix of up to SHORT characters -> its first offset. */
  private readonly short = new Map<string, number>();
  /** Last SHORT characters -> inserted names ending so, in insertion order. */
  private readonly byTail = new Map<string, { name: string; at: number }[]>();

  offset(name: string): number {
    let at = this.known.get(name);
    if (at === undefined) {
      at = (name.length <= SHORT ? this.short.get(name) : this.longSuffix(name)) ?? this.insert(name);
      this.known.set(name, at);
    }
    return at;
  }

  private longSuffix(name: string): number | undefined {
    const e = this.byTail.get(name.slice(-SHORT))?.find((x) => x.name.endsWith(name));
    return e ? e.at + e.name.length - name.length : undefined;
  }

  private insert(name: string): number {
    const at = this.text.length;
    this.text += name + '\0';
    for (let i = Math.max(0, name.length - SHORT); i < name.length; i++) {
      const suffix = name.slice(i);
      if (!this.short.has(suffix)) this.short.set(suffix, at + i);
    }
    if (name.length >= SHORT) {
      const tail = name.slice(-SHORT);
      const list = this.byTail.get(tail);
      if (list) list.push({ name, at });
      else this.byTail.set(tail, [{ name, at }]);
    }
    return at;
  }

  bytes(): Uint8Array {
    return new TextEncoder().encode(this.text);
  }
}

/** A growable big-endian byte buffer for the structure block. */
class StructWriter {
  buf = new Uint8Array(4096);
  dv = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  word(v: number): void {
    this.room(4);
    this.dv.setUint32(this.length, v);
    this.length += 4;
  }
  /** Bytes padded with zeros to a multiple of 4. */
  padded(bytes: Uint8Array, extraNul = false): void {
    const len = bytes.length + (extraNul ? 1 : 0);
    const n = (len + 3) & ~3;
    this.room(n);
    this.buf.set(bytes, this.length);
    this.buf.fill(0, this.length + bytes.length, this.length + n);
    this.length += n;
  }
}

/** Serialize to a version 17 blob laid out as dtc lays it out. */
export function serializeFdt(fdt: Fdt): Uint8Array {
  const enc = new TextEncoder();
  const strings = new StringTable();
  const w = new StructWriter();
  const emit = (node: FdtNode, depth: number) => {
    if (depth > MAX_DEPTH) throw new RangeError(`FDT nodes nested deeper than ${MAX_DEPTH}`);
    w.word(FDT_BEGIN_NODE);
    w.padded(enc.encode(node.name), true);
    for (const prop of node.properties) {
      w.word(FDT_PROP);
      w.word(prop.value.length);
      w.word(strings.offset(prop.name));
      w.padded(prop.value);
    }
    for (const c of node.children) emit(c, depth + 1);
    w.word(FDT_END_NODE);
  };
  emit(fdt.root, 0);
  w.word(FDT_END);
  const str = strings.bytes();
  const structSize = w.length;
  const offRsv = HEADER_SIZE;
  const offStruct = offRsv + (fdt.memReserve.length + 1) * 16;
  const offStrings = offStruct + structSize;
  const total = offStrings + str.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, FDT_MAGIC);
  dv.setUint32(4, total);
  dv.setUint32(8, offStruct);
  dv.setUint32(12, offStrings);
  dv.setUint32(16, offRsv);
  dv.setUint32(20, 17);
  dv.setUint32(24, 16);
  dv.setUint32(28, fdt.bootCpuId);
  dv.setUint32(32, str.length);
  dv.setUint32(36, structSize);
  fdt.memReserve.forEach((r, i) => {
    dv.setBigUint64(offRsv + i * 16, r.address);
    dv.setBigUint64(offRsv + i * 16 + 8, r.size);
  });
  out.set(w.buf.subarray(0, structSize), offStruct);
  out.set(str, offStrings);
  return out;
}
