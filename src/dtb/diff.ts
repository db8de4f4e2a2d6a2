import type { DeviceTree } from './edits.js';
import { adtAccess } from './adt-views.js';
import type { FdtNode } from './fdt.js';
import { formatValue, inferValue } from './prop-value.js';
import { adtPropTyped } from './tree-json.js';
import type { TreeAccess } from './tree-query.js';
import type { AdtNode } from './adt.js';

// Structural difference of two trees of the same kind: nodes added/removed (matched by path),
// properties added/removed/changed (matched by name), placeholder flag changes.

export interface TreeChange {
  kind: 'node-added' | 'node-removed' | 'prop-added' | 'prop-removed' | 'prop-changed';
  path: string;
  property?: string;
  before?: string;
  after?: string;
}

interface Shape<N> extends TreeAccess<N> {
  props(n: N): { name: string; value: Uint8Array; template?: boolean }[];
  show(n: N, p: { name: string; value: Uint8Array; template?: boolean }): string;
}

const adtShape: Shape<AdtNode> = {
  ...adtAccess,
  props: (n) => n.properties,
  show: (n, p) => `${p.template ? '[template] ' : ''}${formatValue(adtPropTyped(p, adtAccess.name(n)))}`,
};

const fdtShape: Shape<FdtNode> = {
  name: (n) => n.name,
  children: (n) => n.children,
  props: (n) => n.properties,
  show: (_n, p) => formatValue(inferValue(p.value, 'be', false)),
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function diffNodes<N>(s: Shape<N>, a: N, b: N, path: string, out: TreeChange[]): void {
  const pa = s.props(a), pb = s.props(b);
  const mb = new Map(pb.map((p) => [p.name, p]));
  const ma = new Map(pa.map((p) => [p.name, p]));
  for (const p of pa) {
    const q = mb.get(p.name);
    if (!q) out.push({ kind: 'prop-removed', path, property: p.name, before: s.show(a, p) });
    else if (!sameBytes(p.value, q.value) || Boolean(p.template) !== Boolean(q.template)) {
      out.push({ kind: 'prop-changed', path, property: p.name, before: s.show(a, p), after: s.show(b, q) });
    }
  }
  for (const q of pb) if (!ma.has(q.name)) out.push({ kind: 'prop-added', path, property: q.name, after: s.show(b, q) });
  const ca = s.children(a), cb = s.children(b);
  const key = (list: readonly N[]) => {
    // Same-named siblings are matched in order: name, name#2, ...
    const seen = new Map<string, number>();
    return list.map((c) => {
      const n = s.name(c);
      const k = (seen.get(n) ?? 0) + 1;
      seen.set(n, k);
      return k === 1 ? n : `${n}#${k}`;
    });
  };
  const ka = key(ca), kb = key(cb);
  const ib = new Map(kb.map((k, i) => [k, cb[i]!]));
  const here = path === '/' ? '' : path;
  ka.forEach((k, i) => {
    const other = ib.get(k);
    if (!other) out.push({ kind: 'node-removed', path: `${here}/${k}` });
    else diffNodes(s, ca[i]!, other, `${here}/${k}`, out);
  });
  const sa = new Set(ka);
  kb.forEach((k) => { if (!sa.has(k)) out.push({ kind: 'node-added', path: `${here}/${k}` }); });
}

export function diffTrees(a: DeviceTree, b: DeviceTree): TreeChange[] {
  const out: TreeChange[] = [];
  if (a.kind === 'adt' && b.kind === 'adt') diffNodes(adtShape, a.root, b.root, '/', out);
  else if (a.kind === 'fdt' && b.kind === 'fdt') diffNodes(fdtShape, a.fdt.root, b.fdt.root, '/', out);
  else throw new TypeError(`cannot compare an ${a.kind.toUpperCase()} with an ${b.kind.toUpperCase()}`);
  return out;
}
