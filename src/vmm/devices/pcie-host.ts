import type { PciWindow, PcieLayout } from '../../dtb/layout.js';
import { M1prepError } from '../../errors.js';
import type { Bus } from '../bus.js';
import type { AccessSize, IrqLine, MmioDevice } from '../device.js';
import { PciFunction, type BarSpec } from './pcie-config.js';

// A generic ECAM PCIe host, the one Linux drives with "pci-host-ecam-generic": configuration space
// memory-mapped at 4 KiB per function (bus << 20 | device << 15 | function << 12, PCIe Base
// Specification 7.2.2), a host bridge at 00:00.0, device functions on the root bus, CPU address
// windows translated to PCI bus addresses and routed to the BAR that the guest placed there, and
// INTA..INTD routed to AIC inputs with the conventional swizzle (slot s, pin p -> intx[(s + p) % 4]).

export class PcieError extends M1prepError {}

const ECAM_BUS_SHIFT = 20n;
const ECAM_DEV_SHIFT = 15n;
const ECAM_FN_SHIFT = 12n;
const MAX_DEVICES = 32;
const MAX_FUNCTIONS = 8;

/** PCI IDs of the generic host bridge that Linux and qemu's -M virt present at 00:00.0. */
const HOST_BRIDGE_VENDOR = 0x1b36;
const HOST_BRIDGE_DEVICE = 0x0008;
const PCI_CLASS_BRIDGE_HOST = 0x060000;

export function createHostBridge(): PciFunction {
  return new PciFunction('pcie-host-bridge', {
    vendorId: HOST_BRIDGE_VENDOR,
    deviceId: HOST_BRIDGE_DEVICE,
    revision: 0,
    classCode: PCI_CLASS_BRIDGE_HOST,
    interruptPin: 0,
  });
}

interface Slot {
  dev: number;
  fn: number;
  f: PciFunction;
}

export class PcieHost {
  private readonly functions = new Map<number, Slot>(); // key: dev << 3 | fn, on the root bus
  private readonly lines: IrqLine[];
  private readonly lineLevels: boolean[];
  readonly ecam: MmioDevice;
  readonly windows: { base: bigint; size: bigint; device: MmioDevice }[] = [];

  constructor(readonly layout: PcieLayout, irqFor: (aicInput: number) => IrqLine) {
    if (layout.intx.length !== 4) throw new PcieError(`pcie: the layout must name 4 INTx inputs, not ${layout.intx.length}`);
    const buses = layout.busRange[1] - layout.busRange[0] + 1;
    if (buses < 1 || layout.ecam.size < BigInt(buses) << ECAM_BUS_SHIFT) {
      throw new PcieError(`pcie: ECAM window of 0x${layout.ecam.size.toString(16)} bytes cannot hold buses ${layout.busRange[0]}..${layout.busRange[1]}`);
    }
    this.lines = layout.intx.map((n) => irqFor(n));
    this.lineLevels = [false, false, false, false];
    this.ecam = this.ecamDevice();
    for (const [name, w, io] of [['pcie-io', layout.io, true], ['pcie-mmio32', layout.mmio32, false], ['pcie-mmio64', layout.mmio64, false]] as const) {
      if (w) this.windows.push({ base: w.base, size: w.size, device: this.windowDevice(name, w, io) });
    }
    this.addFunction(0, 0, createHostBridge());
  }

  /** Plug a function into the root bus at device `dev`, function `fn`. */
  addFunction(dev: number, fn: number, f: PciFunction): void {
    if (dev < 0 || dev >= MAX_DEVICES || fn < 0 || fn >= MAX_FUNCTIONS) throw new PcieError(`pcie: no slot ${dev}.${fn}`);
    const key = (dev << 3) | fn;
    if (this.functions.has(key)) throw new PcieError(`pcie: slot 00:${dev.toString(16).padStart(2, '0')}.${fn} is taken`);
    this.functions.set(key, { dev, fn, f });
    f.onIntxChange = () => this.updateIntx();
  }

  /** The first device number with no function yet (slot 0 is the host bridge). */
  freeDevice(): number {
    for (let d = 1; d < MAX_DEVICES; d++) if (!this.functions.has(d << 3)) return d;
    throw new PcieError('pcie: the root bus is full');
  }

  /** Which INTx input (index into layout.intx) a pin (1 = INTA) of slot `dev` drives. */
  static swizzle(dev: number, pin: number): number {
    return (dev + pin - 1) % 4;
  }

  /** Map the ECAM window and the address windows on the machine's bus. */
  attach(bus: Bus): void {
    bus.add(this.layout.ecam.base, this.layout.ecam.size, this.ecam);
    for (const w of this.windows) bus.add(w.base, w.size, w.device);
  }

  reset(): void {
    for (const s of this.functions.values()) s.f.reset();
  }

  function(dev: number, fn: number): PciFunction | undefined {
    return this.functions.get((dev << 3) | fn)?.f;
  }

  private updateIntx(): void {
    // Lines are shared: a line is high while any function routed to it asserts.
    const levels = [false, false, false, false];
    for (const s of this.functions.values()) {
      const pin = s.f.interruptPin;
      if (pin >= 1 && pin <= 4 && s.f.intxAsserted) levels[PcieHost.swizzle(s.dev, pin)] = true;
    }
    for (let i = 0; i < 4; i++) {
      if (levels[i] !== this.lineLevels[i]) {
        this.lineLevels[i] = levels[i]!;
        this.lines[i]!.set(levels[i]!);
      }
    }
  }

  private decode(offset: bigint): { f: PciFunction; reg: number } | null {
    const bus = Number(offset >> ECAM_BUS_SHIFT);
    if (bus !== 0) return null; // no bridges: only the root bus has functions
    const dev = Number((offset >> ECAM_DEV_SHIFT) & 0x1fn);
    const fn = Number((offset >> ECAM_FN_SHIFT) & 0x7n);
    const slot = this.functions.get((dev << 3) | fn);
    return slot ? { f: slot.f, reg: Number(offset & 0xfffn) } : null;
  }

  private ecamDevice(): MmioDevice {
    const host = this;
    const access = (offset: bigint, size: AccessSize, write: bigint | null): bigint => {
      if (size === 8) {
        // Not something a driver does, but split it rather than misbehave.
        const lo = access(offset, 4, write === null ? null : write & 0xffff_ffffn);
        const hi = access(offset + 4n, 4, write === null ? null : write >> 32n);
        return (hi << 32n) | lo;
      }
      const target = host.decode(offset);
      if (!target || (target.reg & (size - 1)) !== 0) {
        // No function there (or a misaligned access): reads are all ones, writes vanish.
        return (1n << BigInt(size * 8)) - 1n;
      }
      if (write !== null) {
        target.f.writeConfig(target.reg, size, Number(write));
        return 0n;
      }
      return BigInt(target.f.readConfig(target.reg, size));
    };
    return {
      name: 'pcie-ecam',
      read: (offset, size) => access(offset, size, null),
      write: (offset, size, value) => { access(offset, size, value); },
      reset: () => host.reset(),
    };
  }

  private windowDevice(name: string, w: PciWindow, io: boolean): MmioDevice {
    const host = this;
    let last: { f: PciFunction; bar: BarSpec } | null = null;
    const find = (pciAddr: bigint): { bar: BarSpec; offset: bigint } | null => {
      // The last BAR hit first: a driver talks to one device at a time (virtqueue notifies).
      if (last && hit(last.f, last.bar, pciAddr)) return { bar: last.bar, offset: pciAddr - last.f.barAddress(last.bar) };
      for (const s of host.functions.values()) {
        for (const bar of s.f.bars) {
          if (hit(s.f, bar, pciAddr)) {
            last = { f: s.f, bar };
            return { bar, offset: pciAddr - s.f.barAddress(bar) };
          }
        }
      }
      return null;
    };
    const hit = (f: PciFunction, bar: BarSpec, pciAddr: bigint): boolean => {
      if ((bar.kind === 'io') !== io || !f.barEnabled(bar)) return false;
      const a = f.barAddress(bar);
      return pciAddr >= a && pciAddr < a + bar.size;
    };
    return {
      name,
      read(offset, size, cpu) {
        const t = find(w.pciBase + offset);
        // An access nobody claims ends in a master abort: reads return all ones.
        return t ? t.bar.device.read(t.offset, size, cpu) : (size === 8 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(size * 8)) - 1n);
      },
      write(offset, size, value, cpu) {
        const t = find(w.pciBase + offset);
        if (t) t.bar.device.write(t.offset, size, value, cpu);
      },
      reset() {
        last = null;
      },
    };
  }
}
