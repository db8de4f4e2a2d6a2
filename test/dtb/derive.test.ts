import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAdt, serializeAdt, adtNodeName, type AdtNode } from '../../src/dtb/adt.js';
import { findAdt, queryAdt, adtRegPhysical, adtInterrupts, adtCpuImplReg, adtMemoryMap, adtProp, adtU32 } from '../../src/dtb/adt-views.js';
import { deriveAdt, setMemoryMapEntry, adtCpuPhysId } from '../../src/dtb/derive-adt.js';
import { deriveFdt } from '../../src/dtb/derive-fdt.js';
import { parseFdt, serializeFdt, type FdtNode } from '../../src/dtb/fdt.js';
import { findFdt, fdtProp, fdtCells, fdtStrings, fdtFilter } from '../../src/dtb/fdt-views.js';
import { loadLayout, defaultLayoutPath, deviceMap, selectCpus, pcieIntxIrq } from '../../src/dtb/layout.js';
import { corpus } from '../helpers/cli.js';
import { j274Dtb, decompile, dtsMemreserve } from './dtc-oracle.js';

const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
const j274 = parseAdt(new Uint8Array(readFileSync(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre'))));

function templates(n: AdtNode): number {
  return n.properties.filter((p) => p.template).length + n.children.reduce((s, c) => s + templates(c), 0);
}

describe('the layout agrees with the real j274 ADT where the device is real', () => {
  const phys = (p: string) => adtRegPhysical(findAdt(j274, p)!)[0]!;
  it('AIC, UART0, PMGR, watchdog base addresses and IRQs', () => {
    expect(layout.aic.base).toBe(phys('/arm-io/aic').addr);
    expect(layout.aic.size).toBe(phys('/arm-io/aic').size);
    expect(layout.aic.timebase?.base).toBe(phys('/arm-io/aic-timebase').addr);
    expect(layout.uart0).toMatchObject({ base: phys('/arm-io/uart0').addr, size: phys('/arm-io/uart0').size });
    expect(layout.pmgr).toMatchObject({ base: phys('/arm-io/pmgr').addr, size: phys('/arm-io/pmgr').size });
    expect(layout.watchdog.base).toBe(phys('/arm-io/wdt').addr);
    expect(layout.uart0.irq).toBe(adtInterrupts(findAdt(j274, '/arm-io/uart0')!.node)[0]);
    expect(layout.watchdog.irq).toBe(adtInterrupts(findAdt(j274, '/arm-io/wdt')!.node)[0]);
  });
  it('every CPU: ADT reg, cluster and cpu-impl-reg; clusters: acc/cpm-impl-reg', () => {
    const cpus = queryAdt(j274, '/cpus/cpu*');
    expect(cpus).toHaveLength(layout.cpus.length);
    layout.cpus.forEach((c, i) => {
      const n = cpus[i]!.node;
      expect(adtU32(n, 'reg')).toBe(adtCpuPhysId(c));
      expect(adtU32(n, 'cluster-id')).toBe(c.cluster);
      expect(adtCpuImplReg(n)).toEqual({ addr: c.implReg.base, size: c.implReg.size });
      const cl = layout.clusters[c.cluster]!;
      const acc = new DataView(adtProp(n, 'acc-impl-reg')!.value.buffer, adtProp(n, 'acc-impl-reg')!.value.byteOffset);
      expect(acc.getBigUint64(0, true)).toBe(cl.accImplReg!.base);
      expect(acc.getBigUint64(8, true)).toBe(cl.accImplReg!.size);
    });
  });
  it('no AIC IRQ the layout assigns to PCIe is used by a real j274 device', () => {
    const used = new Set<number>();
    const walk = (n: AdtNode) => { adtInterrupts(n).forEach((i) => used.add(i)); n.children.forEach(walk); };
    walk(j274);
    for (const irq of layout.pcie.intx) expect(used.has(irq)).toBe(false);
  });
});

describe('deriveAdt: the XNU guest\'s tree', () => {
  const two = selectCpus(layout, 2);
  const out = deriveAdt(j274, two);
  const bytes = serializeAdt(out);
  const again = parseAdt(bytes);

  it('leaves the base tree untouched and serializes to a tree that parses again', () => {
    expect(Buffer.compare(Buffer.from(serializeAdt(j274)), Buffer.from(readFileSync(path.join(corpus, 'devicetree/DeviceTree.j274ap.dtre'))))).toBe(0);
    expect(Buffer.compare(Buffer.from(serializeAdt(again)), Buffer.from(bytes))).toBe(0);
  });

  it('has exactly the layout\'s CPUs with their ids and cpu-impl-reg', () => {
    const cpus = queryAdt(again, '/cpus/*');
    expect(cpus.map((c) => adtNodeName(c.node))).toEqual(['cpu0', 'cpu1']);
    cpus.forEach((c, i) => {
      expect(adtU32(c.node, 'cpu-id')).toBe(i);
      expect(adtCpuImplReg(c.node)?.addr).toBe(two.cpus[i]!.implReg.base);
    });
    expect(adtU32(findAdt(again, '/arm-io/aic')!.node, '#main-cpus')).toBe(2);
  });

  it('keeps only modelled /arm-io devices, at the layout\'s addresses, and adds the PCIe host', () => {
    const names = findAdt(again, '/arm-io')!.node.children.map(adtNodeName).sort();
    expect(names).toEqual(['aic', 'aic-timebase', 'pcie-ecam', 'pmgr', 'uart0', 'wdt']);
    const phys = (p: string) => adtRegPhysical(findAdt(again, p)!).map((r) => r.addr);
    expect(phys('/arm-io/aic')[0]).toBe(layout.aic.base);
    expect(phys('/arm-io/uart0')).toEqual([layout.uart0.base]);
    expect(phys('/arm-io/pmgr')[0]).toBe(layout.pmgr.base);
    expect(phys('/arm-io/wdt')[0]).toBe(layout.watchdog.base);
    expect(phys('/arm-io/pcie-ecam')).toEqual([layout.pcie.ecam.base]);
    expect(adtInterrupts(findAdt(again, '/arm-io/pcie-ecam')!.node)).toEqual(layout.pcie.intx);
    // Every /arm-io reg the guest sees lies in a window of the VM's device map.
    const map = deviceMap(two);
    for (const f of queryAdt(again, '/arm-io/*')) {
      if (adtNodeName(f.node) === 'pmgr') continue; // further PMGR blocks pass through, see docs
      for (const r of adtRegPhysical(f)) expect(map.some((e) => r.addr >= e.base && r.addr + r.size <= e.base + e.size), `${f.path} ${r.addr.toString(16)}`).toBe(true);
    }
  });

  it('has no placeholders left and tells XNU the RAM', () => {
    expect(templates(again)).toBe(0);
    const chosen = findAdt(again, '/chosen')!.node;
    const dv = (n: string) => new DataView(adtProp(chosen, n)!.value.buffer, adtProp(chosen, n)!.value.byteOffset);
    expect(dv('dram-base').getBigUint64(0, true)).toBe(layout.ram.base);
    expect(dv('dram-size').getBigUint64(0, true)).toBe(layout.ram.size);
  });

  it('setMemoryMapEntry fills a free slot without changing the tree size', () => {
    const t = parseAdt(bytes);
    setMemoryMapEntry(t, 'DeviceTree', layout.boot.xnu.deviceTree.base, BigInt(bytes.length));
    setMemoryMapEntry(t, 'Kernel-__TEXT', layout.boot.xnu.kernel.base, 0x4000n);
    setMemoryMapEntry(t, 'DeviceTree', layout.boot.xnu.deviceTree.base, 0x1234n);
    expect(serializeAdt(t).length).toBe(bytes.length);
    const mm = adtMemoryMap(parseAdt(serializeAdt(t)));
    expect(mm.find((e) => e.name === 'DeviceTree')).toEqual({ name: 'DeviceTree', paddr: layout.boot.xnu.deviceTree.base, size: 0x1234n });
    expect(mm.find((e) => e.name === 'Kernel-__TEXT')?.paddr).toBe(layout.boot.xnu.kernel.base);
  });

  it('keeps named extra devices, or disables instead of removing', () => {
    const kept = deriveAdt(j274, two, { keep: ['mcc'] });
    expect(findAdt(kept, '/arm-io/mcc')).toBeDefined();
    const disabled = deriveAdt(j274, two, { unmodelled: 'disable' });
    const sep = findAdt(disabled, '/arm-io/sep')!.node;
    expect(new TextDecoder().decode(adtProp(sep, 'status')!.value)).toBe('disabled\0');
    expect(adtProp(findAdt(disabled, '/arm-io/uart0')!.node, 'status')).toBeUndefined();
  });

  it('setMemoryMapEntry says so when no slot is left', () => {
    const t = deriveAdt(j274, two, { memoryMapSlots: 0 });
    const mm = findAdt(t, '/chosen/memory-map')!.node;
    mm.properties = mm.properties.filter((p) => !p.name.startsWith('MemoryMapReserved'));
    expect(() => setMemoryMapEntry(t, 'BootArgs', 0x8_0000_0000n, 0x4000n)).toThrow(/no free \/chosen\/memory-map slot for BootArgs/);
  });
});

describe('deriveFdt: the Linux guest\'s tree (skipped when linux-source-6.1 or dtc is absent)', () => {
  const dtb = j274Dtb();
  const derived = () => deriveFdt(parseFdt(new Uint8Array(readFileSync(dtb!))), selectCpus(layout, 4), { initrdSize: 0x12345n, bootargs: 'console=ttySAC0' });

  it.skipIf(!dtb)('is accepted by dtc without a single warning', () => {
    const d = decompile(serializeFdt(derived()));
    expect(d.status).toBe(0);
    expect(d.stderr).toBe('');
    expect(dtsMemreserve(d.dts)).toContainEqual([layout.boot.linux.spinTable.base, layout.boot.linux.spinTable.size]);
  });

  it.skipIf(!dtb)('has the layout\'s CPUs with spin-table release addresses', () => {
    const fdt = parseFdt(serializeFdt(derived()));
    const cpus = findFdt(fdt.root, '/cpus')!.node.children;
    expect(cpus).toHaveLength(4);
    cpus.forEach((c, i) => {
      expect(fdtStrings(c, 'enable-method')).toEqual(['spin-table']);
      const r = fdtCells(fdtProp(c, 'cpu-release-addr')!.value);
      expect((BigInt(r[0]!) << 32n) | BigInt(r[1]!)).toBe(layout.boot.linux.releaseAddrs[i]);
      expect(BigInt(fdtCells(fdtProp(c, 'reg')!.value)[1]!)).toBe(layout.cpus[i]!.mpidr);
    });
  });

  it.skipIf(!dtb)('keeps AIC, the console UART and the PMGR power states the UART needs, drops the rest', () => {
    const fdt = derived();
    const soc = findFdt(fdt.root, '/soc')!.node;
    const compat = soc.children.map((c) => fdtStrings(c, 'compatible')[0]).sort();
    expect(compat).toEqual(['apple,s5l-uart', 'apple,t8103-aic', 'apple,t8103-pmgr', 'pci-host-ecam-generic']);
    // Every phandle a kept node points at exists (power-domains chain, interrupt-parent, clocks).
    const phandles = new Set(fdtFilter(fdt.root, (n) => fdtProp(n, 'phandle') !== undefined).map((n) => fdtCells(fdtProp(n, 'phandle')!.value)[0]));
    for (const n of fdtFilter(fdt.root, () => true)) {
      for (const name of ['power-domains', 'interrupt-parent', 'clocks']) {
        const p = fdtProp(n, name);
        if (p) for (const h of fdtCells(p.value)) expect(phandles.has(h), `${n.name} ${name}`).toBe(true);
      }
    }
    const uart = findFdt(fdt.root, '/soc/serial')!.node;
    expect(fdtCells(fdtProp(uart, 'interrupts')!.value)).toEqual([0, layout.uart0.irq, 4]);
    expect(fdtStrings(findFdt(fdt.root, '/aliases')!.node, 'serial0')).toEqual([`/soc/serial@${layout.uart0.base.toString(16)}`]);
  });

  it.skipIf(!dtb)('puts every /soc device inside a window of the VMM\'s device map', () => {
    const fdt = derived();
    const map = deviceMap(selectCpus(layout, 4));
    for (const n of findFdt(fdt.root, '/soc')!.node.children) {
      const c = fdtCells(fdtProp(n, 'reg')!.value);
      for (let i = 0; i + 3 < c.length; i += 4) {
        const base = (BigInt(c[i]!) << 32n) | BigInt(c[i + 1]!);
        const size = (BigInt(c[i + 2]!) << 32n) | BigInt(c[i + 3]!);
        expect(map.some((e) => e.kind !== 'ram' && base === e.base && size === e.size), n.name).toBe(true);
      }
    }
  });

  it.skipIf(!dtb)('routes PCI INTx to the layout\'s AIC inputs and describes memory and initrd', () => {
    const fdt = derived();
    const pci = findFdt(fdt.root, '/soc/pcie')!.node;
    const map = fdtCells(fdtProp(pci, 'interrupt-map')!.value);
    for (let i = 0; i < map.length; i += 8) {
      const slot = map[i]! >> 11, pin = map[i + 3]!;
      expect(map[i + 6]).toBe(pcieIntxIrq(layout, slot, pin));
    }
    expect(fdtProp(pci, 'msi-parent')).toBeUndefined();
    const mem = findFdt(fdt.root, '/memory')!.node;
    expect(fdtCells(fdtProp(mem, 'reg')!.value)).toEqual([8, 0, 0, 0x4000_0000]);
    const chosen = findFdt(fdt.root, '/chosen')!.node as FdtNode;
    const end = fdtCells(fdtProp(chosen, 'linux,initrd-end')!.value);
    expect((BigInt(end[0]!) << 32n) | BigInt(end[1]!)).toBe(layout.boot.linux.initrd.base + 0x12345n);
    const timer = fdt.root.children.find((c) => c.name === 'timer')!;
    expect(fdtStrings(timer, 'interrupt-names')).toEqual(layout.timer.interrupts.map((t) => t.name));
  });
});
