import type { AdtNode, AdtProperty } from './adt.js';
import { adtNodeName } from './adt.js';
import { queryTree, type Found, type TreeAccess } from './tree-query.js';

// Typed views of the common ADT properties. ADT cells are little-endian u32s; a two-cell number
// is low word first (so a 64-bit address reads as a little-endian u64). Device "reg" values are
// relative to the parent's "ranges" (arm-io), which map them into the physical address space.

export const adtAccess: TreeAccess<AdtNode> = { name: adtNodeName, children: (n) => n.children };

export function queryAdt(root: AdtNode, pattern: string): Found<AdtNode>[] {
  return queryTree(root, pattern, adtAccess);
}

export function findAdt(root: AdtNode, path: string): Found<AdtNode> | undefined {
  return queryAdt(root, path)[0];
}

export function adtProp(node: AdtNode, name: string): AdtProperty | undefined {
  return node.properties.find((p) => p.name === name);
}

const dvOf = (v: Uint8Array) => new DataView(v.buffer, v.byteOffset, v.byteLength);

export function u32s(v: Uint8Array): number[] {
  const dv = dvOf(v);
  const out: number[] = [];
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(dv.getUint32(i, true));
  return out;
}

export function adtU32(node: AdtNode, name: string): number | undefined {
  const p = adtProp(node, name);
  return p && p.value.length >= 4 ? dvOf(p.value).getUint32(0, true) : undefined;
}

/** NUL-separated strings (a trailing NUL ends the last one). */
export function cStrings(v: Uint8Array): string[] {
  const s = new TextDecoder('latin1').decode(v);
  const parts = s.split('\0');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function adtString(node: AdtNode, name: string): string | undefined {
  const p = adtProp(node, name);
  return p ? (cStrings(p.value)[0] ?? '') : undefined;
}

export function adtCompatible(node: AdtNode): string[] {
  const p = adtProp(node, 'compatible');
  return p ? cStrings(p.value) : [];
}

/** Read `cells` little-endian u32 cells at cell index `at` as one number. */
function cellsAt(words: number[], at: number, cells: number): bigint {
  let v = 0n;
  for (let i = cells - 1; i >= 0; i--) v = (v << 32n) | BigInt(words[at + i] ?? 0);
  return v;
}

/** #address-cells / #size-cells of a node, with the ADT's defaults (2 and 2, as on arm-io). */
export function adtCells(node: AdtNode | undefined): { address: number; size: number } {
  return {
    address: (node && adtU32(node, '#address-cells')) ?? 2,
    size: (node && adtU32(node, '#size-cells')) ?? 2,
  };
}

export interface RegEntry {
  addr: bigint;
  size: bigint;
}

/** "reg" of `node` in its parent's address space (cells from the parent). */
export function adtReg(node: AdtNode, parent: AdtNode | undefined): RegEntry[] {
  const p = adtProp(node, 'reg');
  if (!p) return [];
  const c = adtCells(parent);
  const w = u32s(p.value);
  const step = c.address + c.size;
  const out: RegEntry[] = [];
  for (let i = 0; step > 0 && i + step <= w.length; i += step) out.push({ addr: cellsAt(w, i, c.address), size: cellsAt(w, i + c.address, c.size) });
  return out;
}

export interface RangeEntry {
  child: bigint;
  parent: bigint;
  size: bigint;
}

/** "ranges" of `node`: child addresses (node's cells) to parent addresses (parent's cells). */
export function adtRanges(node: AdtNode, parent: AdtNode | undefined): RangeEntry[] {
  const p = adtProp(node, 'ranges');
  if (!p) return [];
  const own = adtCells(node);
  const up = adtCells(parent);
  const w = u32s(p.value);
  const step = own.address + up.address + own.size;
  const out: RangeEntry[] = [];
  for (let i = 0; i + step <= w.length; i += step) {
    out.push({ child: cellsAt(w, i, own.address), parent: cellsAt(w, i + own.address, up.address), size: cellsAt(w, i + own.address + up.address, own.size) });
  }
  return out;
}

/**
 * Translate an address in `found`'s parent's space to a physical address, through the "ranges"
 * of every ancestor that has them. Undefined when a ranges table exists but does not cover it.
 */
export function adtTranslate(found: Found<AdtNode>, addr: bigint): bigint | undefined {
  let a = addr;
  for (let i = found.parents.length - 1; i >= 1; i--) {
    const bus = found.parents[i]!;
    if (!adtProp(bus, 'ranges')) continue;
    const r = adtRanges(bus, found.parents[i - 1]).find((e) => a >= e.child && a < e.child + e.size);
    if (!r) return undefined;
    a = a - r.child + r.parent;
  }
  return a;
}

/** "reg" translated to physical addresses. */
export function adtRegPhysical(found: Found<AdtNode>): RegEntry[] {
  const parent = found.parents[found.parents.length - 1];
  return adtReg(found.node, parent).map((r) => ({ addr: adtTranslate(found, r.addr) ?? r.addr, size: r.size }));
}

export function adtInterrupts(node: AdtNode): number[] {
  const p = adtProp(node, 'interrupts');
  return p ? u32s(p.value) : [];
}

/** The node an "interrupt-parent" phandle names (matched against AAPL,phandle). */
export function adtInterruptParent(root: AdtNode, node: AdtNode): AdtNode | undefined {
  const ph = adtU32(node, 'interrupt-parent');
  if (ph === undefined) return undefined;
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (adtU32(n, 'AAPL,phandle') === ph) return n;
    stack.push(...n.children);
  }
  return undefined;
}

export interface MemoryMapEntry {
  name: string;
  paddr: bigint;
  size: bigint;
}

/** /chosen/memory-map: one [paddr, size] u64 pair per boot object (and unused Reserved slots). */
export function adtMemoryMap(root: AdtNode): MemoryMapEntry[] {
  const mm = findAdt(root, '/chosen/memory-map');
  if (!mm) return [];
  return mm.node.properties
    .filter((p) => p.value.length === 16 && p.name !== 'name')
    .map((p) => {
      const dv = dvOf(p.value);
      return { name: p.name, paddr: dv.getBigUint64(0, true), size: dv.getBigUint64(8, true) };
    });
}

/** cpu-impl-reg of a CPU node: base and size of its implementation-defined block. */
export function adtCpuImplReg(node: AdtNode): RegEntry | undefined {
  const p = adtProp(node, 'cpu-impl-reg');
  if (!p || p.value.length < 16) return undefined;
  const dv = dvOf(p.value);
  return { addr: dv.getBigUint64(0, true), size: dv.getBigUint64(8, true) };
}
