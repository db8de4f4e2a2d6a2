import { readFileSync } from 'node:fs';
import { serializeAdt, type AdtNode } from '../dtb/adt.js';
import { cString } from '../dtb/adt-build.js';
import { applyEdits, loadEdits } from '../dtb/edits.js';

// The sample's base Apple device tree (samples/devicetree/t8103-sample.yaml): device-tree edits
// applied to an empty root, so the tree is written as data and contains nothing of Apple's.

export function buildSampleBaseAdt(file: string): Uint8Array {
  const root: AdtNode = { properties: [{ name: 'name', value: cString('device-tree') }], children: [] };
  const out = applyEdits({ kind: 'adt', root }, loadEdits(readFileSync(file, 'utf8'), file));
  if (out.kind !== 'adt') throw new Error('unreachable: edits of an ADT give an ADT');
  return serializeAdt(out.root);
}
