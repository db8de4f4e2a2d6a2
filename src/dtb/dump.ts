import { hex } from '../util/hex.js';
import type { AdtNode } from './adt.js';
import { adtNodeName } from './adt.js';
import { adtAccess, adtRegPhysical, adtProp } from './adt-views.js';
import type { FdtNode } from './fdt.js';
import { formatValue, inferValue } from './prop-value.js';
import { adtPropTyped } from './tree-json.js';
import type { Found } from './tree-query.js';

// The readable text form of a (sub)tree: one header line per node (its path), then one line per
// property, "name = value" with dtc-like value syntax; ADT "reg" lines also show the physical
// address after translation through the parents' "ranges"; placeholders are marked [template].

export interface DumpOptions {
  /** Levels below the start node to print (Infinity: all). */
  depth?: number;
}

export function dumpAdt(found: Found<AdtNode>, opts: DumpOptions = {}): string {
  const lines: string[] = [];
  const maxDepth = opts.depth ?? Infinity;
  const visit = (f: Found<AdtNode>, depth: number) => {
    const n = f.node;
    lines.push(f.path);
    const nodeName = adtNodeName(n);
    for (const p of n.properties) {
      const t = adtPropTyped(p, nodeName);
      let line = `    ${p.name} =${p.template ? ' [template]' : ''} ${formatValue(t)}`.trimEnd();
      if (p.name === 'reg' && f.parents.slice(1).some((x) => adtProp(x, 'ranges') !== undefined)) {
        const phys = adtRegPhysical(f);
        if (phys.length) line += `    # phys ${phys.map((r) => `${hex(r.addr)}+${hex(r.size)}`).join(', ')}`;
      }
      lines.push(line);
    }
    if (depth >= maxDepth) {
      if (n.children.length) lines.push(`    (${n.children.length} children: ${n.children.map(adtNodeName).join(', ')})`);
      return;
    }
    for (const c of n.children) {
      const name = adtAccess.name(c);
      visit({ node: c, path: `${f.path === '/' ? '' : f.path}/${name}`, parents: [...f.parents, n] }, depth + 1);
    }
  };
  visit(found, 0);
  return lines.join('\n');
}

export function dumpFdt(found: Found<FdtNode>, opts: DumpOptions = {}): string {
  const lines: string[] = [];
  const maxDepth = opts.depth ?? Infinity;
  const visit = (n: FdtNode, path: string, depth: number) => {
    lines.push(path);
    for (const p of n.properties) lines.push(`    ${p.name} = ${formatValue(inferValue(p.value, 'be', false))}`.trimEnd());
    if (depth >= maxDepth) {
      if (n.children.length) lines.push(`    (${n.children.length} children: ${n.children.map((c) => c.name).join(', ')})`);
      return;
    }
    for (const c of n.children) visit(c, `${path === '/' ? '' : path}/${c.name}`, depth + 1);
  };
  visit(found.node, found.path, 0);
  return lines.join('\n');
}
