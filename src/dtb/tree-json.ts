import { FormatError } from '../errors.js';
import type { AdtNode, AdtProperty } from './adt.js';
import { adtNodeName } from './adt.js';
import type { Fdt, FdtNode } from './fdt.js';
import { encodeValue, inferValue, type Endian, type TypedValue, type ValueType } from './prop-value.js';

// The JSON form of ADTs and FDTs: every property carries a type so the tree rebuilds byte for
// byte (`m1prep dtree build`). Numbers are bigints here; the CLI prints them as "0x..." strings
// and the reader accepts both.

export interface JsonProperty {
  name: string;
  type: ValueType;
  value?: string | string[] | bigint | bigint[];
  /** ADT placeholder (template): bit 31 of the length. */
  template?: boolean;
}

export interface JsonAdtNode {
  properties: JsonProperty[];
  children: JsonAdtNode[];
}

export interface JsonFdtNode {
  name: string;
  properties: JsonProperty[];
  children: JsonFdtNode[];
}

export interface AdtJson {
  kind: 'adt';
  root: JsonAdtNode;
}

export interface FdtJson {
  kind: 'fdt';
  bootCpuId: number;
  memReserve: { address: bigint; size: bigint }[];
  root: JsonFdtNode;
}

const MAX_DEPTH = 64;

const WIDE = new Set(['reg', 'ranges', 'acc-impl', 'cpm-impl', 'dram-base', 'dram-size']);

/** ADT properties holding 64-bit numbers: shown as u64 lists. */
export function adtWide(propName: string, nodeName: string): boolean {
  return WIDE.has(propName) || propName.endsWith('-reg') || nodeName === 'memory-map';
}

export function adtPropTyped(p: AdtProperty, nodeName: string): TypedValue {
  return inferValue(p.value, 'le', adtWide(p.name, nodeName));
}

function jsonProp(name: string, t: TypedValue, template?: boolean): JsonProperty {
  const j: JsonProperty = { name, type: t.type };
  if (t.value !== undefined) j.value = t.value;
  if (template) j.template = true;
  return j;
}

export function adtToJson(root: AdtNode): AdtJson {
  const conv = (n: AdtNode): JsonAdtNode => {
    const nodeName = adtNodeName(n);
    return {
      properties: n.properties.map((p) => jsonProp(p.name, adtPropTyped(p, nodeName), p.template)),
      children: n.children.map(conv),
    };
  };
  return { kind: 'adt', root: conv(root) };
}

export function fdtToJson(fdt: Fdt): FdtJson {
  const conv = (n: FdtNode): JsonFdtNode => ({
    name: n.name,
    properties: n.properties.map((p) => jsonProp(p.name, inferValue(p.value, 'be', false))),
    children: n.children.map(conv),
  });
  return { kind: 'fdt', bootCpuId: fdt.bootCpuId, memReserve: fdt.memReserve, root: conv(fdt.root) };
}

// ---- reading JSON back ----

function bad(path: string, detail: string): never {
  throw new FormatError('tree JSON', 0n, `${path}: ${detail}`);
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function readProps(j: unknown, path: string, endian: Endian): { name: string; value: Uint8Array; template: boolean }[] {
  if (!Array.isArray(j)) bad(path, 'properties must be a list');
  return j.map((p, i) => {
    if (!isObj(p) || typeof p.name !== 'string' || typeof p.type !== 'string') bad(`${path}[${i}]`, 'a property needs "name" and "type"');
    try {
      const value = encodeValue({ type: p.type as ValueType, value: p.value as TypedValue['value'] }, endian, `property ${p.name}`);
      return { name: p.name, value, template: p.template === true };
    } catch (e) {
      if (e instanceof TypeError) bad(path, e.message);
      throw e;
    }
  });
}

export function adtFromJson(j: unknown): AdtNode {
  if (!isObj(j) || j.kind !== 'adt') bad('/', 'not an ADT JSON document (kind must be "adt")');
  const conv = (n: unknown, path: string, depth: number): AdtNode => {
    if (depth > MAX_DEPTH) bad(path, `nodes nested deeper than ${MAX_DEPTH}`);
    if (!isObj(n) || !Array.isArray(n.children)) bad(path, 'a node needs "properties" and "children" lists');
    const properties = readProps(n.properties, path, 'le').map((p) => {
      if (p.name.length >= 32) bad(path, `property name "${p.name}" is longer than 31 bytes`);
      const q: AdtProperty = { name: p.name, value: p.value };
      if (p.template) q.template = true;
      return q;
    });
    const node: AdtNode = { properties, children: [] };
    const here = path === '/' ? '' : path;
    node.children = n.children.map((c, i) => conv(c, `${here}/${i}`, depth + 1));
    return node;
  };
  return conv(j.root, '/', 0);
}

export function fdtFromJson(j: unknown): Fdt {
  if (!isObj(j) || j.kind !== 'fdt') bad('/', 'not an FDT JSON document (kind must be "fdt")');
  const conv = (n: unknown, path: string, depth: number): FdtNode => {
    if (depth > MAX_DEPTH) bad(path, `nodes nested deeper than ${MAX_DEPTH}`);
    if (!isObj(n) || typeof n.name !== 'string' || !Array.isArray(n.children)) bad(path, 'a node needs "name", "properties" and "children"');
    const properties = readProps(n.properties, path, 'be').map((p) => ({ name: p.name, value: p.value }));
    const here = path === '/' ? '' : path;
    return { name: n.name, properties, children: n.children.map((c) => conv(c, `${here}/${isObj(c) ? String(c.name) : '?'}`, depth + 1)) };
  };
  const rsv = Array.isArray(j.memReserve) ? j.memReserve : [];
  const num = (x: unknown, what: string): bigint => {
    if (typeof x === 'number' || (typeof x === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(x))) return BigInt(x);
    if (typeof x === 'bigint') return x;
    bad('/memReserve', `${what} is not a number`);
  };
  return {
    root: conv(j.root, '/', 0),
    bootCpuId: Number(j.bootCpuId ?? 0),
    memReserve: rsv.map((r) => (isObj(r) ? { address: num(r.address, 'address'), size: num(r.size, 'size') } : bad('/memReserve', 'entries need address and size'))),
  };
}
