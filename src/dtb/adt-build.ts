import type { AdtNode, AdtProperty } from './adt.js';
import { adtProp } from './adt-views.js';

// Small helpers to write ADT property values (little-endian cells) and to change nodes in place.

export function leU32s(values: (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setUint32(i * 4, Number(v), true));
  return out;
}

export function leU64s(values: bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
  return out;
}

export function cString(s: string): Uint8Array {
  const out = new Uint8Array(s.length + 1);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Set (replace in place, keeping the property's position, or append) a property value. */
export function setAdtProp(node: AdtNode, name: string, value: Uint8Array): void {
  const p = adtProp(node, name);
  if (p) {
    p.value = value;
    delete p.template;
  } else {
    node.properties.push({ name, value });
  }
}

export function deleteAdtProp(node: AdtNode, name: string): void {
  node.properties = node.properties.filter((p) => p.name !== name);
}

/** Deep copy of the structure (values are shared; edits replace values, never write into them). */
export function cloneAdt(n: AdtNode): AdtNode {
  return { properties: n.properties.map((p): AdtProperty => ({ ...p })), children: n.children.map(cloneAdt) };
}
