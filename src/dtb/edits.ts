import editsSchema from '../../schemas/dtree-edits.schema.json' with { type: 'json' };
import { FormatError, PatchError } from '../errors.js';
import { adtNodeName, type AdtNode, type AdtProperty } from './adt.js';
import type { Fdt, FdtNode } from './fdt.js';
import { parseYamlSource, toU64 } from './layout-source.js';
import { encodeValue, type Endian, type TypedValue } from './prop-value.js';
import { checkSchema } from './schema-check.js';
import { queryTree, type TreeAccess } from './tree-query.js';

// Device-tree edits declared in YAML (schemas/dtree-edits.schema.json), applied in order to an
// ADT or an FDT by the pure function applyEdits(). Profiles name edit files; `m1prep dtree edit`
// applies one. An edit that matches no node fails (PatchError) unless it says optional: true.

export type EditValue =
  | { u32: bigint } | { u64: bigint } | { u32s: bigint[] } | { u64s: bigint[] }
  | { string: string } | { strings: string[] } | { bytes: string } | { reg: [bigint, bigint][] } | { empty: true };

export interface NewProperty {
  name: string;
  value: EditValue;
}

export type Edit =
  | { op: 'set'; path: string; property: string; value: EditValue; optional?: boolean }
  | { op: 'delete'; path: string; property?: string; optional?: boolean }
  | { op: 'add'; path: string; name: string; properties: NewProperty[]; optional?: boolean }
  | { op: 'rename'; path: string; to: string; optional?: boolean }
  | { op: 'templates'; path: string; resolve: Record<string, EditValue>; unresolved: 'remove' | 'zero' | 'keep'; optional?: boolean };

export type DeviceTree = { kind: 'adt'; root: AdtNode } | { kind: 'fdt'; fdt: Fdt };

const VALUE_KEYS = ['u32', 'u64', 'u32s', 'u64s', 'string', 'strings', 'bytes', 'reg', 'empty'] as const;

/* eslint-disable @typescript-eslint/no-explicit-any */
function valueOf(raw: any): EditValue {
  for (const k of VALUE_KEYS) {
    if (raw[k] === undefined) continue;
    switch (k) {
      case 'u32': case 'u64': return { [k]: toU64(raw[k]) } as EditValue;
      case 'u32s': case 'u64s': return { [k]: (raw[k] as unknown[]).map(toU64) } as EditValue;
      case 'reg': return { reg: (raw.reg as unknown[][]).map((p) => [toU64(p[0]), toU64(p[1])] as [bigint, bigint]) };
      case 'empty': return { empty: true };
      default: return { [k]: raw[k] } as EditValue;
    }
  }
  throw new TypeError('no value');
}

/** Parse and validate an edits file. Invalid files raise PatchError naming file and line. */
export function loadEdits(yamlText: string, file?: string): Edit[] {
  try {
    const { src, value } = parseYamlSource('dtree edits', yamlText, file);
    checkSchema('dtree edits', editsSchema, value, src);
    return ((value as any).edits as any[]).map((e): Edit => {
      const optional = e.optional === true ? { optional: true } : {};
      if (e.set !== undefined) return { op: 'set', path: e.set, property: e.property, value: valueOf(e), ...optional };
      if (e.delete !== undefined) return { op: 'delete', path: e.delete, ...(e.property !== undefined ? { property: e.property } : {}), ...optional };
      if (e.add !== undefined) {
        return { op: 'add', path: e.add, name: e.name, properties: (e.properties ?? []).map((p: any) => ({ name: p.name, value: valueOf(p) })), ...optional };
      }
      if (e.rename !== undefined) return { op: 'rename', path: e.rename, to: e.to, ...optional };
      const resolve: Record<string, EditValue> = {};
      for (const [k, v] of Object.entries(e.resolve ?? {})) resolve[k] = valueOf(v);
      return { op: 'templates', path: e.templates, resolve, unresolved: e.unresolved ?? 'remove', ...optional };
    });
  } catch (e) {
    if (e instanceof FormatError) throw new PatchError(e.oneLine());
    throw e;
  }
}

// ---- applying ----

interface Prop {
  name: string;
  value: Uint8Array;
  template?: boolean;
}

interface Adapter<N> extends TreeAccess<N> {
  endian: Endian;
  props(n: N): Prop[];
  setProps(n: N, p: Prop[]): void;
  setChildren(n: N, c: N[]): void;
  rename(n: N, to: string): void;
  create(name: string): N;
  /** #address-cells / #size-cells a node gives its children. */
  cells(n: N | undefined): { address: number; size: number };
}

function cellOf<N>(a: Adapter<N>, n: N | undefined, name: string, dflt: number): number {
  if (!n) return dflt;
  const p = a.props(n).find((q) => q.name === name);
  if (!p || p.value.length < 4) return dflt;
  return new DataView(p.value.buffer, p.value.byteOffset, 4).getUint32(0, a.endian === 'le');
}

const adtAdapter: Adapter<AdtNode> = {
  endian: 'le',
  name: adtNodeName,
  children: (n) => n.children,
  props: (n) => n.properties,
  setProps: (n, p) => { n.properties = p as AdtProperty[]; },
  setChildren: (n, c) => { n.children = c; },
  rename: (n, to) => {
    const value = encodeValue({ type: 'string', value: to }, 'le', 'name');
    const p = n.properties.find((q) => q.name === 'name');
    if (p) { p.value = value; delete p.template; } else n.properties.push({ name: 'name', value });
  },
  create: (name) => ({ properties: [{ name: 'name', value: encodeValue({ type: 'string', value: name }, 'le', 'name') }], children: [] }),
  cells: (n) => ({ address: cellOf(adtAdapter, n, '#address-cells', 2), size: cellOf(adtAdapter, n, '#size-cells', 2) }),
};

const fdtAdapter: Adapter<FdtNode> = {
  endian: 'be',
  name: (n) => n.name,
  children: (n) => n.children,
  props: (n) => n.properties,
  setProps: (n, p) => { n.properties = p.map((q) => ({ name: q.name, value: q.value })); },
  setChildren: (n, c) => { n.children = c; },
  rename: (n, to) => { n.name = to; },
  create: (name) => ({ name, properties: [], children: [] }),
  // Devicetree specification defaults: 2 address cells, 1 size cell.
  cells: (n) => ({ address: cellOf(fdtAdapter, n, '#address-cells', 2), size: cellOf(fdtAdapter, n, '#size-cells', 1) }),
};

function cellsBytes(v: bigint, cells: number, endian: Endian, what: string): number[] {
  if (v >= 1n << BigInt(32 * cells)) throw new PatchError(`${what}: ${'0x' + v.toString(16)} does not fit in ${cells} cell(s)`);
  const words: bigint[] = [];
  for (let i = 0; i < cells; i++) words.push((v >> BigInt(32 * i)) & 0xffff_ffffn);
  // FDT: most significant cell first; ADT: least significant first (little-endian u64).
  return (endian === 'be' ? words.reverse() : words).map(Number);
}

function encodeEdit(v: EditValue, endian: Endian, parentCells: { address: number; size: number }, what: string): Uint8Array {
  let t: TypedValue;
  if ('reg' in v) {
    const ws = v.reg.flatMap(([a, s]) => [...cellsBytes(a, parentCells.address, endian, what), ...cellsBytes(s, parentCells.size, endian, what)]);
    t = { type: 'u32[]', value: ws.map(BigInt) };
  } else if ('u32' in v) t = { type: 'u32', value: v.u32 };
  else if ('u64' in v) t = { type: 'u64', value: v.u64 };
  else if ('u32s' in v) t = { type: 'u32[]', value: v.u32s };
  else if ('u64s' in v) t = { type: 'u64[]', value: v.u64s };
  else if ('string' in v) t = { type: 'string', value: v.string };
  else if ('strings' in v) t = { type: 'strings', value: v.strings };
  else if ('bytes' in v) t = { type: 'bytes', value: v.bytes };
  else t = { type: 'empty' };
  try {
    return encodeValue(t, endian, what);
  } catch (e) {
    if (e instanceof TypeError) throw new PatchError(e.message);
    throw e;
  }
}

/** The size a template asks for: the "/N" after its last source ("syscfg/EMac/6" -> 6). */
export function templateSize(template: Uint8Array): number | undefined {
  const text = new TextDecoder('latin1').decode(template).replace(/\0.*$/s, '');
  const m = /\/(0x[0-9a-f]+|\d+)$/i.exec(text.split(',').pop() ?? '');
  return m ? Number(m[1]) : undefined;
}

function cloneTree<N>(a: Adapter<N>, n: N, copy: (n: N) => N): N {
  const c = copy(n);
  a.setProps(c, a.props(n).map((p) => ({ ...p })));
  a.setChildren(c, a.children(n).map((k) => cloneTree(a, k, copy)));
  return c;
}

function applyTo<N>(a: Adapter<N>, root: N, edits: Edit[]): void {
  edits.forEach((e, i) => {
    const what = `edit ${i + 1} (${e.op} ${e.path})`;
    const found = queryTree(root, e.path, a, a.endian === 'be');
    if (found.length === 0) {
      if (e.optional) return;
      throw new PatchError(`${what}: no node matches`);
    }
    for (const f of found) {
      const parent = f.parents[f.parents.length - 1];
      const props = a.props(f.node);
      switch (e.op) {
        case 'set': {
          const value = encodeEdit(e.value, a.endian, a.cells(parent), `${what}: ${e.property}`);
          const p = props.find((q) => q.name === e.property);
          if (p) { p.value = value; delete p.template; } else props.push({ name: e.property, value });
          a.setProps(f.node, props);
          break;
        }
        case 'delete':
          if (e.property !== undefined) {
            if (!props.some((q) => q.name === e.property) && !e.optional) throw new PatchError(`${what}: ${f.path} has no property ${e.property}`);
            a.setProps(f.node, props.filter((q) => q.name !== e.property));
          } else {
            if (!parent) throw new PatchError(`${what}: the root node cannot be deleted`);
            a.setChildren(parent, a.children(parent).filter((c) => c !== f.node));
          }
          break;
        case 'add': {
          if (a.children(f.node).some((c) => a.name(c) === e.name)) throw new PatchError(`${what}: ${f.path} already has a child ${e.name}`);
          const n = a.create(e.name);
          const own = a.props(n);
          for (const p of e.properties) {
            const value = encodeEdit(p.value, a.endian, a.cells(f.node), `${what}: ${p.name}`);
            const q = own.find((x) => x.name === p.name);
            if (q) q.value = value; else own.push({ name: p.name, value });
          }
          a.setProps(n, own);
          a.setChildren(f.node, [...a.children(f.node), n]);
          break;
        }
        case 'rename':
          if (!parent) throw new PatchError(`${what}: the root node cannot be renamed`);
          a.rename(f.node, e.to);
          break;
        case 'templates':
          resolveTemplates(a, f.node, e, what);
          break;
      }
    }
  });
}

/** Fill placeholders from `resolve`, then remove, zero-fill or keep the rest, below `node`. */
function resolveTemplates<N>(a: Adapter<N>, node: N, e: Extract<Edit, { op: 'templates' }>, what: string): void {
  const stack = [node];
  while (stack.length) {
    const n = stack.pop()!;
    const out: Prop[] = [];
    for (const p of a.props(n)) {
      if (!p.template) { out.push(p); continue; }
      const v = e.resolve[p.name];
      if (v) out.push({ name: p.name, value: encodeEdit(v, a.endian, { address: 2, size: 2 }, `${what}: ${p.name}`) });
      else if (e.unresolved === 'keep') out.push(p);
      else if (e.unresolved === 'zero') out.push({ name: p.name, value: new Uint8Array(templateSize(p.value) ?? 0) });
      // 'remove': drop it.
    }
    a.setProps(n, out);
    stack.push(...a.children(n));
  }
}

/** Apply edits in order; returns a new tree and leaves the input untouched. */
export function applyEdits(tree: DeviceTree, edits: Edit[]): DeviceTree {
  if (tree.kind === 'adt') {
    const root = cloneTree(adtAdapter, tree.root, () => ({ properties: [], children: [] }));
    applyTo(adtAdapter, root, edits);
    return { kind: 'adt', root };
  }
  const root = cloneTree(fdtAdapter, tree.fdt.root, (n) => ({ name: n.name, properties: [], children: [] }));
  applyTo(fdtAdapter, root, edits);
  return { kind: 'fdt', fdt: { ...tree.fdt, memReserve: [...tree.fdt.memReserve], root } };
}
