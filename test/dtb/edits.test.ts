import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAdt, serializeAdt, adtNodeName } from '../../src/dtb/adt.js';
import { findAdt, adtProp, adtRegPhysical, adtU32 } from '../../src/dtb/adt-views.js';
import { applyEdits, loadEdits, templateSize } from '../../src/dtb/edits.js';
import { serializeFdt } from '../../src/dtb/fdt.js';
import { findFdt, fdtProp } from '../../src/dtb/fdt-views.js';
import { PatchError } from '../../src/errors.js';
import { corpus } from '../helpers/cli.js';
import { dtc, compileDts, decompile } from './dtc-oracle.js';
import { parseFdt } from '../../src/dtb/fdt.js';

const raw = new Uint8Array(readFileSync(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre')));

const EDITS = `
description: exercise every edit
edits:
  - set: /arm-io/uart0
    property: uart-version
    u32: 7
  - set: /arm-io/uart0
    property: reg
    reg: [[0x3520_4000, 0x1000]]
  - set: /chosen
    property: m1prep-note
    string: hello
  - set: /chosen
    property: dram-size
    u64: 0x4000_0000
  - delete: /arm-io/uart2
  - delete: /arm-io/uart0
    property: no-flow-control
  - add: /arm-io
    name: extra
    properties:
      - { name: compatible, strings: ["m1prep,extra", other] }
      - { name: reg, reg: [[0x1000, 0x100]] }
  - rename: /arm-io/wdt
    to: watchdog
  - templates: /chosen
    resolve:
      coverglass-color: { u32: 3 }
    unresolved: zero
  - delete: /arm-io/does-not-exist
    optional: true
`;

describe('device-tree edits on the j274 ADT', () => {
  const before = parseAdt(raw);
  const after = applyEdits({ kind: 'adt', root: before }, loadEdits(EDITS, 'edits.yaml'));
  if (after.kind !== 'adt') throw new Error('kind changed');
  const root = parseAdt(serializeAdt(after.root));

  it('is pure: the input tree is unchanged', () => {
    expect(Buffer.compare(Buffer.from(serializeAdt(before)), Buffer.from(raw))).toBe(0);
  });

  it('sets u32, reg (parent cells, translated by arm-io ranges), string and u64 values', () => {
    const uart = findAdt(root, '/arm-io/uart0')!;
    expect(adtU32(uart.node, 'uart-version')).toBe(7);
    expect(adtRegPhysical(uart)).toEqual([{ addr: 0x2_3520_4000n, size: 0x1000n }]);
    const chosen = findAdt(root, '/chosen')!.node;
    expect(new TextDecoder().decode(adtProp(chosen, 'm1prep-note')!.value)).toBe('hello\0');
    expect(adtProp(chosen, 'dram-size')!.value).toEqual(new Uint8Array([0, 0, 0, 0x40, 0, 0, 0, 0]));
  });

  it('deletes nodes and properties, adds and renames nodes', () => {
    expect(findAdt(root, '/arm-io/uart2')).toBeUndefined();
    expect(adtProp(findAdt(root, '/arm-io/uart0')!.node, 'no-flow-control')).toBeUndefined();
    const extra = findAdt(root, '/arm-io/extra')!.node;
    expect(new TextDecoder().decode(adtProp(extra, 'compatible')!.value)).toBe('m1prep,extra\0other\0');
    expect(findAdt(root, '/arm-io/wdt')).toBeUndefined();
    expect(findAdt(root, '/arm-io/watchdog')).toBeDefined();
  });

  it('resolves placeholders, zero-fills the rest with the size the template names', () => {
    const chosen = findAdt(root, '/chosen')!.node;
    expect(chosen.properties.some((p) => p.template)).toBe(false);
    expect(adtU32(chosen, 'coverglass-color')).toBe(3);
    expect(adtProp(chosen, 'mac-address-wifi0')!.value).toEqual(new Uint8Array(6)); // "macaddr/wifiaddr,syscfg/WMac/6"
    // Outside /chosen the placeholders stay.
    expect(findAdt(root, '/product')!.node.properties.some((p) => p.template)).toBe(true);
  });

  it('reads the size iBoot would fill from a template', () => {
    const t = (s: string) => templateSize(new TextEncoder().encode(s + '\0'));
    expect(t('syscfg/SwBh/0x10,zeroes/0x10')).toBe(16);
    expect(t('macaddr/ethaddr,syscfg/EMac/6')).toBe(6);
    expect(t('syscfg/CLCG')).toBeUndefined();
  });
});

describe('device-tree edits: errors', () => {
  const tree = { kind: 'adt' as const, root: parseAdt(raw) };
  it('an edit that matches nothing is a PatchError naming the edit', () => {
    const e = loadEdits('edits:\n  - delete: /arm-io/nope\n');
    expect(() => applyEdits(tree, e)).toThrow(PatchError);
    expect(() => applyEdits(tree, e)).toThrow(/edit 1 \(delete \/arm-io\/nope\): no node matches/);
  });
  it('invalid files are a PatchError with file and line', () => {
    expect(() => loadEdits('edits:\n  - set: /chosen\n    property: x\n', 'e.yaml')).toThrow(/e\.yaml: .*line 2/);
    expect(() => loadEdits('edits:\n  - frobnicate: /chosen\n', 'e.yaml')).toThrow(PatchError);
    expect(() => loadEdits('edits:\n  - set: /chosen\n    property: x\n    u32: 1\n    string: y\n', 'e.yaml')).toThrow(PatchError);
    expect(() => loadEdits('edits: [', 'e.yaml')).toThrow(/e\.yaml: .*line 1/);
  });
  it('a value that does not fit is a PatchError', () => {
    expect(() => applyEdits(tree, loadEdits('edits:\n  - set: /chosen\n    property: x\n    u32: 0x1_0000_0000\n'))).toThrow(/does not fit in 32 bits/);
  });
  it('applies to every node a glob matches', () => {
    const out = applyEdits(tree, loadEdits('edits:\n  - set: /arm-io/*uart*\n    property: status\n    string: disabled\n'));
    if (out.kind !== 'adt') throw new Error();
    const uarts = findAdt(out.root, '/arm-io')!.node.children.filter((c) => /uart/.test(adtNodeName(c)));
    expect(uarts.length).toBeGreaterThan(1);
    for (const u of uarts) expect(new TextDecoder().decode(adtProp(u, 'status')!.value)).toBe('disabled\0');
  });
});

describe.skipIf(!dtc)('device-tree edits on an FDT (dtc checks the result; skipped without dtc)', () => {
  it('sets reg with the parent\'s cells (big-endian), adds, renames and deletes; dtc reads it back', () => {
    const blob = compileDts('/dts-v1/;\n/ { #address-cells = <2>; #size-cells = <1>; soc { #address-cells = <1>; #size-cells = <1>; dev@10 { reg = <0x10 4>; }; old { }; }; };\n');
    const edits = loadEdits(`
edits:
  - set: /soc/dev
    property: reg
    reg: [[0x20, 8]]
  - rename: /soc/dev
    to: dev@20
  - add: /soc
    name: new@30
    properties: [{ name: reg, reg: [[0x30, 4]] }, { name: flag, empty: true }]
  - delete: /soc/old
`);
    const out = applyEdits({ kind: 'fdt', fdt: parseFdt(blob) }, edits);
    if (out.kind !== 'fdt') throw new Error();
    const d = decompile(serializeFdt(out.fdt));
    expect(d.status).toBe(0);
    expect(d.dts).toMatch(/dev@20 \{\s*reg = <0x20 0x08>;/);
    expect(d.dts).toMatch(/new@30 \{\s*reg = <0x30 0x04>;\s*flag;/);
    expect(d.dts).not.toMatch(/old/);
    expect(fdtProp(findFdt(out.fdt.root, '/soc/new@30')!.node, 'flag')!.value.length).toBe(0);
  });
});
