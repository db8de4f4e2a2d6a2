import type { FdtNode, FdtProperty } from './fdt.js';
import { queryTree, type Found, type TreeAccess } from './tree-query.js';
import { cStrings } from './adt-views.js';

// Queries and typed reads for FDT nodes (big-endian cells). Path segments without "@unit" match
// any unit address: /soc/serial matches /soc/serial@235200000.

export const fdtAccess: TreeAccess<FdtNode> = { name: (n) => n.name, children: (n) => n.children };

export function queryFdt(root: FdtNode, pattern: string): Found<FdtNode>[] {
  return queryTree(root, pattern, fdtAccess, true);
}

export function findFdt(root: FdtNode, path: string): Found<FdtNode> | undefined {
  return queryFdt(root, path)[0];
}

export function fdtProp(node: FdtNode, name: string): FdtProperty | undefined {
  return node.properties.find((p) => p.name === name);
}

export function fdtCells(v: Uint8Array): number[] {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= v.length; i += 4) out.push(dv.getUint32(i));
  return out;
}

export function fdtU32(node: FdtNode, name: string): number | undefined {
  const p = fdtProp(node, name);
  return p && p.value.length >= 4 ? fdtCells(p.value)[0] : undefined;
}

export function fdtStrings(node: FdtNode, name: string): string[] {
  const p = fdtProp(node, name);
  return p ? cStrings(p.value) : [];
}

/** Nodes (depth first) for which `pred` holds. */
export function fdtFilter(root: FdtNode, pred: (n: FdtNode) => boolean): FdtNode[] {
  const out: FdtNode[] = [];
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (pred(n)) out.push(n);
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
  }
  return out;
}
