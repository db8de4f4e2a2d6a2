import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultLayoutPath, loadLayout, pcieIntxIrq } from '../../src/dtb/layout.js';
import { Bus } from '../../src/vmm/bus.js';
import type { AccessSize, MmioDevice } from '../../src/vmm/device.js';
import { PciFunction, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_MEMORY, PCI_COMMAND_IO, PCI_STATUS, PCI_STATUS_INTERRUPT } from '../../src/vmm/devices/pcie-config.js';
import { PcieHost } from '../../src/vmm/devices/pcie-host.js';

// Config-space behaviour of the generic ECAM host as a guest's PCI core sees it: enumeration by
// ECAM offset, BAR sizing with all-ones writes, BAR placement and decode through the CPU windows,
// command-register gating, and INTx routing with the slot swizzle onto the layout's AIC inputs.

const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
const ecam = layout.pcie.ecam.base;
const cfg = (dev: number, fn: number, reg: number): bigint => ecam + (BigInt(dev) << 15n) + (BigInt(fn) << 12n) + BigInt(reg);

/** A BAR target that records accesses and answers reads with an address-derived pattern. */
function recorder(name: string): MmioDevice & { log: string[] } {
  const log: string[] = [];
  return {
    name, log,
    read(offset: bigint, size: AccessSize) { log.push(`r${size}@${offset}`); return 0xa500n + offset; },
    write(offset: bigint, size: AccessSize, value: bigint) { log.push(`w${size}@${offset}=${value}`); },
    reset() { log.length = 0; },
  };
}

function machine() {
  const bus = new Bus();
  const levels = new Map<number, boolean>();
  const host = new PcieHost(layout.pcie, (irq) => ({ set: (l) => { levels.set(irq, l); } }));
  host.attach(bus);
  return { bus, host, levels };
}

function sizeBar(bus: Bus, dev: number, reg: number): number {
  const addr = cfg(dev, 0, reg);
  const old = Number(bus.read(addr, 4));
  bus.write(addr, 4, 0xffff_ffffn);
  const v = Number(bus.read(addr, 4));
  bus.write(addr, 4, BigInt(old));
  return v;
}

describe('ECAM PCIe host: configuration space', () => {
  it('presents a host bridge at 00:00.0 and all ones where no function exists', () => {
    const { bus } = machine();
    expect(bus.read(cfg(0, 0, 0), 4)).toBe(0x0008_1b36n);
    expect(bus.read(cfg(0, 0, 0x0a), 2)).toBe(0x0600n); // class: host bridge
    expect(bus.read(cfg(0, 0, 0x0e), 1)).toBe(0n); // type 0 header, single function
    expect(bus.read(cfg(1, 0, 0), 4)).toBe(0xffff_ffffn);
    expect(bus.read(cfg(0, 1, 0), 2)).toBe(0xffffn);
    expect(bus.read(ecam + (1n << 20n), 4)).toBe(0xffff_ffffn); // bus 1: nothing behind a bridge
  });

  it('decodes bus/device/function from the ECAM offset', () => {
    const { bus, host } = machine();
    const f = new PciFunction('probe', { vendorId: 0x1234, deviceId: 0x5678, revision: 3, classCode: 0xff0000, interruptPin: 0 });
    host.addFunction(5, 3, f);
    expect(bus.read(cfg(5, 3, 0), 4)).toBe(0x5678_1234n);
    expect(bus.read(cfg(5, 3, 8), 1)).toBe(3n);
    expect(bus.read(cfg(5, 0, 0), 4)).toBe(0xffff_ffffn);
    expect(bus.read(cfg(4, 3, 0), 4)).toBe(0xffff_ffffn);
    // Sub-word reads see the same bytes as the word.
    expect(bus.read(cfg(5, 3, 2), 2)).toBe(0x5678n);
    expect(bus.read(cfg(5, 3, 1), 1)).toBe(0x12n);
    expect(() => host.addFunction(5, 3, f)).toThrow(/taken/);
  });

  it('keeps read-only registers read-only and writable ones writable', () => {
    const { bus } = machine();
    bus.write(cfg(0, 0, 0), 4, 0xdead_beefn);
    expect(bus.read(cfg(0, 0, 0), 4)).toBe(0x0008_1b36n);
    bus.write(cfg(0, 0, 0x3c), 1, 0x2an); // interrupt line: scratch for the OS
    expect(bus.read(cfg(0, 0, 0x3c), 1)).toBe(0x2an);
    bus.write(cfg(0, 0, PCI_COMMAND), 2, 0xffffn);
    // Only the implemented command bits stick.
    expect(Number(bus.read(cfg(0, 0, PCI_COMMAND), 2)) & ~0x547).toBe(0);
  });

  it('sizes BARs the way the guest does (all ones, read back, restore)', () => {
    const { bus, host } = machine();
    const f = new PciFunction('bars', { vendorId: 1, deviceId: 2, revision: 0, classCode: 0, interruptPin: 1 }, [
      { index: 0, kind: 'mem32', size: 0x1000n, device: recorder('b0') },
      { index: 1, kind: 'io', size: 0x20n, device: recorder('b1') },
      { index: 2, kind: 'mem64', size: 0x1_0000_0000n, prefetchable: true, device: recorder('b2') },
    ]);
    host.addFunction(1, 0, f);
    expect(sizeBar(bus, 1, 0x10)).toBe(0xffff_f000);
    expect(sizeBar(bus, 1, 0x14)).toBe(0xffff_ffe1); // I/O space indicator bit stays set
    expect(sizeBar(bus, 1, 0x18)).toBe(0x0000_000c); // 4 GiB: no low address bits, 64-bit + prefetch
    expect(sizeBar(bus, 1, 0x1c)).toBe(0xffff_ffff);
    expect(sizeBar(bus, 1, 0x20)).toBe(0); // unimplemented BAR
    expect(() => new PciFunction('bad', { vendorId: 1, deviceId: 2, revision: 0, classCode: 0, interruptPin: 0 },
      [{ index: 0, kind: 'mem32', size: 0x1800n, device: recorder('x') }])).toThrow(/power of two/);
  });

  it('routes window accesses to the BAR the guest assigned, only while decoding is enabled', () => {
    const { bus, host } = machine();
    const b0 = recorder('b0');
    const b2 = recorder('b2');
    const io = recorder('io');
    host.addFunction(2, 0, new PciFunction('dev', { vendorId: 1, deviceId: 2, revision: 0, classCode: 0, interruptPin: 1 }, [
      { index: 0, kind: 'mem32', size: 0x1000n, device: b0 },
      { index: 1, kind: 'io', size: 0x100n, device: io },
      { index: 2, kind: 'mem64', size: 0x4000n, device: b2 },
    ]));
    const { mmio32, mmio64, io: ioWin } = layout.pcie;
    // Place BAR0 in the 32-bit window (PCI address = pciBase + 0x2000), BAR2 in the 64-bit one.
    bus.write(cfg(2, 0, 0x10), 4, mmio32.pciBase + 0x2000n);
    const b2pci = mmio64.pciBase + 0x10000n;
    bus.write(cfg(2, 0, 0x18), 4, b2pci & 0xffff_ffffn);
    bus.write(cfg(2, 0, 0x1c), 4, b2pci >> 32n);
    bus.write(cfg(2, 0, 0x14), 4, ioWin.pciBase + 0x100n);
    expect(bus.read(cfg(2, 0, 0x10), 4)).toBe(mmio32.pciBase + 0x2000n);

    // Memory decoding is off after reset: a master abort reads all ones and reaches nobody.
    expect(bus.read(mmio32.base + 0x2010n, 4)).toBe(0xffff_ffffn);
    expect(b0.log).toEqual([]);
    bus.write(cfg(2, 0, PCI_COMMAND), 2, BigInt(PCI_COMMAND_MEMORY));
    expect(bus.read(mmio32.base + 0x2010n, 4)).toBe(0xa510n);
    bus.write(mmio64.base + 0x10000n + 0x3ffcn, 4, 7n);
    bus.write(mmio64.base + 0x10000n + 0x4000n, 4, 8n); // one past the BAR: nobody
    expect(b0.log).toEqual(['r4@16']);
    expect(b2.log).toEqual(['w4@16380=7']);
    // I/O decoding has its own enable bit.
    expect(bus.read(ioWin.base + 0x104n, 1)).toBe(0xffn);
    bus.write(cfg(2, 0, PCI_COMMAND), 2, BigInt(PCI_COMMAND_MEMORY | PCI_COMMAND_IO));
    expect(bus.read(ioWin.base + 0x104n, 1)).toBe(0xa504n);
    // Moving a BAR moves the decode.
    bus.write(cfg(2, 0, 0x10), 4, mmio32.pciBase + 0x8000n);
    expect(bus.read(mmio32.base + 0x2010n, 4)).toBe(0xffff_ffffn);
    expect(bus.read(mmio32.base + 0x8004n, 4)).toBe(0xa504n);
  });

  it('routes INTx through the slot swizzle to the layout AIC inputs, shared lines ORed', () => {
    const { host, levels, bus } = machine();
    const mk = (pin: number) => new PciFunction(`p${pin}`, { vendorId: 1, deviceId: 2, revision: 0, classCode: 0, interruptPin: pin });
    const a1 = mk(1); // slot 1 INTA -> intx[1]
    const a2 = mk(1); // slot 2 INTA -> intx[2]
    const d1 = mk(4); // slot 5 INTD -> intx[(5 + 3) % 4] = intx[0]
    const a4 = mk(1); // slot 4 INTA -> intx[(4 + 0) % 4] = intx[0]: shares with d1
    host.addFunction(1, 0, a1);
    host.addFunction(2, 0, a2);
    host.addFunction(5, 0, d1);
    host.addFunction(4, 0, a4);
    a1.setIntx(true);
    expect(levels.get(pcieIntxIrq(layout, 1, 1))).toBe(true);
    expect(pcieIntxIrq(layout, 1, 1)).toBe(layout.pcie.intx[1]);
    a2.setIntx(true);
    expect(levels.get(pcieIntxIrq(layout, 2, 1))).toBe(true);
    d1.setIntx(true);
    a4.setIntx(true);
    expect(levels.get(pcieIntxIrq(layout, 5, 4))).toBe(true);
    expect(pcieIntxIrq(layout, 5, 4)).toBe(pcieIntxIrq(layout, 4, 1));
    d1.setIntx(false);
    expect(levels.get(layout.pcie.intx[0])).toBe(true); // a4 still holds it
    a4.setIntx(false);
    expect(levels.get(layout.pcie.intx[0])).toBe(false);
    // The status register mirrors the condition; INTx disable masks the pin but not the status.
    expect(Number(bus.read(cfg(1, 0, PCI_STATUS), 2)) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    bus.write(cfg(1, 0, PCI_COMMAND), 2, BigInt(PCI_COMMAND_INTX_DISABLE));
    expect(levels.get(layout.pcie.intx[1])).toBe(false);
    expect(Number(bus.read(cfg(1, 0, PCI_STATUS), 2)) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    bus.write(cfg(1, 0, PCI_COMMAND), 2, 0n);
    expect(levels.get(layout.pcie.intx[1])).toBe(true);
  });

  it('maps its windows on the bus where the layout says, and rejects a bad layout', () => {
    const { bus } = machine();
    const names = bus.list().map((m) => `${m.device.name}@${m.base.toString(16)}`);
    expect(names).toEqual(expect.arrayContaining([
      `pcie-ecam@${layout.pcie.ecam.base.toString(16)}`,
      `pcie-mmio32@${layout.pcie.mmio32.base.toString(16)}`,
      `pcie-mmio64@${layout.pcie.mmio64.base.toString(16)}`,
      `pcie-io@${layout.pcie.io.base.toString(16)}`,
    ]));
    expect(() => new PcieHost({ ...layout.pcie, ecam: { base: ecam, size: 0x10_0000n }, busRange: [0, 3] }, () => ({ set() {} }))).toThrow(/cannot hold/);
  });
});
