// Path and glob queries shared by the ADT and the FDT: "/arm-io/uart0", "/arm-io/*uart*",
// "/**/wdt" (** spans any number of levels). Segments match node names; in an FDT a segment
// without "@" also matches "name@unit".

export interface TreeAccess<N> {
  name(node: N): string;
  children(node: N): readonly N[];
}

export interface Found<N> {
  node: N;
  path: string;
  /** Ancestors from the root down to the parent. */
  parents: N[];
}

function segments(pattern: string): string[] {
  return pattern.split('/').filter((s) => s.length > 0);
}

function matcher(seg: string, unitOptional: boolean): (name: string) => boolean {
  if (!/[*?[]/.test(seg)) {
    return unitOptional && !seg.includes('@')
      ? (n) => n === seg || (n.startsWith(seg) && n.charCodeAt(seg.length) === 64 /* @ */)
      : (n) => n === seg;
  }
  const re = new RegExp(
    '^' + seg.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + (unitOptional && !seg.includes('@') ? '(@.*)?' : '') + '$',
  );
  return (n) => re.test(n);
}

/** Every node matching `pattern` (absolute; "/" is the root), in tree order. */
export function queryTree<N>(root: N, pattern: string, access: TreeAccess<N>, unitOptional = false): Found<N>[] {
  const segs = segments(pattern);
  const out: Found<N>[] = [];
  const seen = new Set<N>();
  const walk = (node: N, path: string, parents: N[], i: number) => {
    if (i === segs.length) {
      if (!seen.has(node)) {
        seen.add(node);
        out.push({ node, path: path || '/', parents });
      }
      return;
    }
    const seg = segs[i]!;
    if (seg === '**') {
      walk(node, path, parents, i + 1);
      for (const c of access.children(node)) walk(c, `${path}/${access.name(c)}`, [...parents, node], i);
      return;
    }
    const m = matcher(seg, unitOptional);
    for (const c of access.children(node)) {
      const name = access.name(c);
      if (m(name)) walk(c, `${path}/${name}`, [...parents, node], i + 1);
    }
  };
  if (segs.length === 0) return [{ node: root, path: '/', parents: [] }];
  walk(root, '', [], 0);
  return out;
}

/** Every node with its path, depth first. */
export function* walkTree<N>(root: N, access: TreeAccess<N>, path = ''): Generator<{ node: N; path: string }> {
  yield { node: root, path: path || '/' };
  for (const c of access.children(root)) yield* walkTree(c, access, `${path}/${access.name(c)}`);
}
