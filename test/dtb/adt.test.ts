import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAdt, serializeAdt, adtNodeName, type AdtNode } from '../../src/dtb/adt.js';
import {
  findAdt, queryAdt, adtRegPhysical, adtCompatible, adtInterrupts, adtInterruptParent, adtMemoryMap, adtCpuImplReg, adtRanges, adtProp,
} from '../../src/dtb/adt-views.js';
import { adtToJson, adtFromJson } from '../../src/dtb/tree-json.js';
import { openDeviceTree } from '../../src/dtb/device-tree.js';
import { parseFdt } from '../../src/dtb/fdt.js';
import { findFdt, fdtProp, fdtCells } from '../../src/dtb/fdt-views.js';
import { toJson } from '../../src/util/hex.js';
import { corpus } from '../helpers/cli.js';
import { j274Dtb } from './dtc-oracle.js';

const dir = path.join(corpus, 'devicetree');
const raw = new Uint8Array(readFileSync(path.join(dir, 'DeviceTree.j274ap.dtre')));
const im4p = new Uint8Array(readFileSync(path.join(dir, 'DeviceTree.j274ap.im4p')));

function countTemplates(n: AdtNode): number {
  return n.properties.filter((p) => p.template).length + n.children.reduce((s, c) => s + countTemplates(c), 0);
}

describe('ADT: the Mac mini M1 (j274) device tree', () => {
  const root = parseAdt(raw);

  it('round-trips byte for byte, placeholders included', () => {
    expect(countTemplates(root)).toBeGreaterThan(0);
    expect(Buffer.compare(Buffer.from(serializeAdt(root)), Buffer.from(raw))).toBe(0);
  });

  it('JSON -> ADT rebuild is byte-identical', () => {
    const json = JSON.parse(toJson(adtToJson(root)));
    expect(Buffer.compare(Buffer.from(serializeAdt(adtFromJson(json))), Buffer.from(raw))).toBe(0);
  });

  it('opens the IM4P through the container layer and finds the same tree', () => {
    const t = openDeviceTree(im4p);
    expect(t.layers).toContain('im4p:dtre');
    expect(t.tree.kind).toBe('adt');
    if (t.tree.kind === 'adt') expect(Buffer.compare(Buffer.from(serializeAdt(t.tree.root)), Buffer.from(raw))).toBe(0);
  });

  it('opens the bare LZFSE payload as well', () => {
    const t = openDeviceTree(new Uint8Array(readFileSync(path.join(dir, 'DeviceTree.j274ap.dtre.lzfse'))));
    expect(t.layers).toEqual(['lzfse']);
    if (t.tree.kind !== 'adt') throw new Error('not an ADT');
    expect(Buffer.compare(Buffer.from(serializeAdt(t.tree.root)), Buffer.from(raw))).toBe(0);
  });

  it('names the root "device-tree" and answers path and glob queries', () => {
    expect(adtNodeName(root)).toBe('device-tree');
    expect(findAdt(root, '/arm-io/uart0')?.path).toBe('/arm-io/uart0');
    const uarts = queryAdt(root, '/arm-io/*uart*').map((f) => f.path);
    expect(uarts).toContain('/arm-io/uart0');
    expect(uarts.every((p) => /uart/.test(p.split('/').pop()!))).toBe(true);
    expect(queryAdt(root, '/**/debug-console').map((f) => f.path)).toEqual(['/arm-io/uart0/debug-console']);
    expect(findAdt(root, '/arm-io/no-such-node')).toBeUndefined();
  });

  it('types compatible, interrupts, interrupt-parent and placeholders', () => {
    const uart = findAdt(root, '/arm-io/uart0')!;
    expect(adtCompatible(uart.node)[0]).toMatch(/uart/);
    const parent = adtInterruptParent(root, uart.node);
    expect(parent && adtNodeName(parent)).toBe('aic');
    const chosen = findAdt(root, '/chosen')!.node;
    const templ = chosen.properties.filter((p) => p.template);
    // iBoot's placeholder values are C strings naming their source (syscfg/..., macaddr/...).
    for (const p of templ) expect(new TextDecoder().decode(p.value)).toMatch(/^[a-z]+\/[^\0]*\0$/);
  });

  it('has an empty /chosen/memory-map template for the boot loader', () => {
    const mm = adtMemoryMap(root);
    expect(mm.length).toBeGreaterThan(4);
    expect(mm.every((e) => /^MemoryMapReserved-\d+$/.test(e.name) && e.paddr === 0n && e.size === 0n)).toBe(true);
  });

  it('translates /arm-io children through the arm-io ranges', () => {
    const armIo = findAdt(root, '/arm-io')!;
    const ranges = adtRanges(armIo.node, root);
    expect(ranges.length).toBeGreaterThan(0);
    for (const r of ranges) expect(r.size).toBeGreaterThan(0n);
    const uart = findAdt(root, '/arm-io/uart0')!;
    const rel = BigInt(new DataView(adtProp(uart.node, 'reg')!.value.buffer, adtProp(uart.node, 'reg')!.value.byteOffset).getUint32(0, true));
    const phys = adtRegPhysical(uart)[0]!.addr;
    const r = ranges.find((e) => rel >= e.child && rel < e.child + e.size)!;
    expect(phys).toBe(rel - r.child + r.parent);
  });

  it('reads cpu-impl-reg of every CPU, distinct per core', () => {
    const cpus = queryAdt(root, '/cpus/cpu*');
    const regs = cpus.map((c) => adtCpuImplReg(c.node)!);
    expect(regs.every((r) => r && r.size > 0n)).toBe(true);
    expect(new Set(regs.map((r) => r.addr)).size).toBe(cpus.length);
  });
});

// Linux's device tree for the same machine is written independently of Apple's: where both name a
// device, the physical addresses and IRQs must agree.
describe('ADT against Linux\'s t8103 device tree (skipped when linux-source-6.1 or dtc is absent)', () => {
  const dtb = j274Dtb();
  it.skipIf(!dtb)('agrees on the AIC, UART0, PMGR and watchdog addresses and IRQs, and the CPU ids', () => {
    const adt = parseAdt(raw);
    const fdt = parseFdt(new Uint8Array(readFileSync(dtb!)));
    const linuxReg = (p: string) => {
      const c = fdtCells(fdtProp(findFdt(fdt.root, p)!.node, 'reg')!.value);
      return (BigInt(c[0]!) << 32n) | BigInt(c[1]!);
    };
    const linuxIrq = (p: string) => fdtCells(fdtProp(findFdt(fdt.root, p)!.node, 'interrupts')!.value)[1];
    const adtReg = (p: string) => adtRegPhysical(findAdt(adt, p)!)[0]!.addr;
    expect(adtReg('/arm-io/aic')).toBe(linuxReg('/soc/interrupt-controller'));
    expect(adtReg('/arm-io/uart0')).toBe(linuxReg('/soc/serial@235200000'));
    expect(adtReg('/arm-io/pmgr')).toBe(linuxReg('/soc/power-management@23b700000'));
    expect(adtReg('/arm-io/wdt')).toBe(linuxReg('/soc/watchdog'));
    expect(adtInterrupts(findAdt(adt, '/arm-io/uart0')!.node)[0]).toBe(linuxIrq('/soc/serial@235200000'));
    expect(adtInterrupts(findAdt(adt, '/arm-io/wdt')!.node)[0]).toBe(linuxIrq('/soc/watchdog'));
    // ADT cpu "reg" is (Aff1 << 8) | Aff0; Linux's is the MPIDR affinity (Aff2.Aff1.Aff0).
    const adtIds = queryAdt(adt, '/cpus/cpu*').map((c) => new DataView(adtProp(c.node, 'reg')!.value.buffer, adtProp(c.node, 'reg')!.value.byteOffset).getUint32(0, true));
    const linuxIds = findFdt(fdt.root, '/cpus')!.node.children.map((c) => fdtCells(fdtProp(c, 'reg')!.value)[1]!);
    expect(adtIds).toEqual(linuxIds.map((m) => m & 0xffff));
  });
});
