import { FormatError } from '../errors.js';

// Apple Device Tree (ADT), the tree iBoot hands to XNU. Layout from XNU's
// pexpert/pexpert/device_tree.h (DeviceTreeNode, DeviceTreeNodeProperty), all little-endian:
//   node:     u32 nProperties, u32 nChildren, properties, then children (recursively)
//   property: char name[kPropNameLength = 32] (NUL-terminated), u32 length, value,
//             next property at (length + 3) & ~3
// Bit 31 of length marks a placeholder (template) property whose value names what iBoot fills in.
// The parser is zero-copy: property values are subarrays of the input.

export const kPropNameLength = 32;
/** Bit 31 of a property length: a template iBoot resolves (or removes) before XNU sees it. */
export const ADT_PLACEHOLDER = 0x8000_0000;
/** Deeper nesting than this is corrupt input, not a device tree (the j274 ADT nests 5 deep). */
const MAX_DEPTH = 64;

export interface AdtProperty {
  name: string;
  /** The value without the padding; a view into the parsed bytes until edited. */
  value: Uint8Array;
  /** Placeholder (template) property: bit 31 of the length was set. */
  template?: boolean;
}

export interface AdtNode {
  properties: AdtProperty[];
  children: AdtNode[];
}

const latin1 = new TextDecoder('latin1');

/** A node's name is its "name" property (the root's is "device-tree"). */
export function adtNodeName(node: AdtNode): string {
  const p = node.properties.find((q) => q.name === 'name');
  if (!p) return '';
  const end = p.value.indexOf(0);
  return latin1.decode(end < 0 ? p.value : p.value.subarray(0, end));
}

class AdtReader {
  private readonly dv: DataView;
  private readonly stack: AdtNode[] = [];
  constructor(private readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private where(): string {
    if (this.stack.length === 0) return '/';
    const names = this.stack.map((n, i) => (i === 0 ? '' : adtNodeName(n) || '?'));
    return names.join('/') || '/';
  }

  fail(off: number, detail: string): never {
    throw new FormatError('ADT', BigInt(off), `${detail} (in node ${this.where()})`);
  }

  node(off: number, depth: number): { node: AdtNode; end: number } {
    const b = this.b;
    if (depth > MAX_DEPTH) this.fail(off, `nodes nested deeper than ${MAX_DEPTH}`);
    if (off + 8 > b.length) this.fail(off, `node header needs 8 bytes, ${b.length - off} left`);
    const nProps = this.dv.getUint32(off, true);
    const nChildren = this.dv.getUint32(off + 4, true);
    // Every property takes at least 36 bytes and every child 8: counts beyond that cannot be real.
    const left = b.length - off - 8;
    if (nProps * 36 > left) this.fail(off, `node claims ${nProps} properties, only ${left} bytes follow`);
    if (nChildren * 8 > left - nProps * 36) this.fail(off + 4, `node claims ${nChildren} children, only ${left} bytes follow`);
    const node: AdtNode = { properties: [], children: [] };
    this.stack.push(node);
    let p = off + 8;
    for (let i = 0; i < nProps; i++) {
      if (p + 36 > b.length) this.fail(p, `property header needs 36 bytes, ${b.length - p} left`);
      let n = 0;
      while (n < kPropNameLength && b[p + n] !== 0) n++;
      if (n === kPropNameLength) this.fail(p, 'property name has no NUL within 32 bytes');
      const name = latin1.decode(b.subarray(p, p + n));
      const raw = this.dv.getUint32(p + 32, true);
      const len = raw & 0x7fff_ffff;
      const start = p + 36;
      if (len > b.length - start) this.fail(p + 32, `property "${name}" is ${len} bytes, only ${b.length - start} left`);
      const prop: AdtProperty = { name, value: b.subarray(start, start + len) };
      if (raw & ADT_PLACEHOLDER) prop.template = true;
      node.properties.push(prop);
      p = start + ((len + 3) & ~3);
    }
    if (p > b.length) this.fail(b.length, 'last property padding runs past the end');
    for (let i = 0; i < nChildren; i++) {
      const r = this.node(p, depth + 1);
      node.children.push(r.node);
      p = r.end;
    }
    this.stack.pop();
    return { node, end: p };
  }
}

export interface ParsedAdt {
  root: AdtNode;
  /** Bytes consumed; input beyond this is not part of the tree. */
  size: number;
}

/**
 * Parse an ADT from `bytes` at `offset`. Throws FormatError (structure "ADT", offset, node path)
 * on truncation, lengths past the end, impossible counts, names without NUL, or runaway nesting.
 */
export function parseAdtAt(bytes: Uint8Array, offset = 0): ParsedAdt {
  const r = new AdtReader(bytes);
  const { node, end } = r.node(offset, 0);
  return { root: node, size: end - offset };
}

/** Parse a whole ADT file; trailing bytes after the root node are an error. */
export function parseAdt(bytes: Uint8Array): AdtNode {
  const { root, size } = parseAdtAt(bytes, 0);
  if (size !== bytes.length) {
    throw new FormatError('ADT', BigInt(size), `${bytes.length - size} bytes follow the root node`);
  }
  return root;
}

function sizeOf(node: AdtNode, depth: number): number {
  if (depth > MAX_DEPTH) throw new RangeError(`ADT nodes nested deeper than ${MAX_DEPTH}`);
  let n = 8;
  for (const p of node.properties) n += 36 + ((p.value.length + 3) & ~3);
  for (const c of node.children) n += sizeOf(c, depth + 1);
  return n;
}

/** Serialize a tree to ADT bytes; parseAdt(serializeAdt(t)) reproduces t, and vice versa. */
export function serializeAdt(root: AdtNode): Uint8Array {
  const out = new Uint8Array(sizeOf(root, 0));
  const dv = new DataView(out.buffer);
  const write = (node: AdtNode, off: number): number => {
    dv.setUint32(off, node.properties.length, true);
    dv.setUint32(off + 4, node.children.length, true);
    off += 8;
    for (const p of node.properties) {
      const name = p.name;
      if (name.length >= kPropNameLength) throw new RangeError(`ADT property name "${name}" is longer than 31 bytes`);
      for (let i = 0; i < name.length; i++) out[off + i] = name.charCodeAt(i) & 0xff;
      const len = p.value.length;
      if (len > 0x7fff_ffff) throw new RangeError(`ADT property "${name}" is too large`);
      dv.setUint32(off + 32, (len | (p.template ? ADT_PLACEHOLDER : 0)) >>> 0, true);
      out.set(p.value, off + 36);
      off += 36 + ((len + 3) & ~3);
    }
    for (const c of node.children) off = write(c, off);
    return off;
  };
  write(root, 0);
  return out;
}

/** ADT or not: a plausible root node whose first property is a small, NUL-terminated name. */
export function looksLikeAdt(b: Uint8Array): boolean {
  if (b.length < 8 + 36) return false;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // Only what every ADT has decides: at least one property, and a printable first name. Counts
  // that are too large are the parser's to report (with the node and offset), not a reason to call
  // the file something else.
  if (dv.getUint32(0, true) === 0) return false;
  const nul = b.subarray(8, 8 + kPropNameLength).indexOf(0);
  if (nul <= 0) return false;
  for (let i = 8; i < 8 + nul; i++) if (b[i]! < 0x20 || b[i]! > 0x7e) return false;
  return (dv.getUint32(8 + 32, true) & 0x7fff_ffff) <= b.length;
}
