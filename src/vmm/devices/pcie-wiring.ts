import type { PcieLayout } from '../../dtb/layout.js';
import type { Bus } from '../bus.js';
import type { IrqLine } from '../device.js';
import { DiskImage } from './disk-image.js';
import type { GuestMemory } from './pcie-dma.js';
import { PcieHost } from './pcie-host.js';
import { VirtioBlk, type VirtioBlkStats } from './virtio-blk.js';
import { VirtioPciFunction } from './virtio-pci.js';

// The one call the machine builder makes for the PCIe side of the machine: the ECAM host from the
// layout, one virtio-blk function per disk (slots 1, 2, ... on the root bus), everything mapped on
// the bus and INTx wired to the AIC inputs the layout names.

export interface DiskSpec {
  path: string;
  /** Write guest writes into the image (`--disk-writable`); by default they go to an overlay. */
  writable?: boolean;
  /** Present the disk read-only to the guest. */
  readOnly?: boolean;
}

export interface PcieWiringOptions {
  bus: Bus;
  /** DMA access to guest RAM (RamGuestMemory over the machine's RAM regions). */
  mem: GuestMemory;
  /** The AIC's input line for a hardware IRQ number. */
  irq: (aicIrq: number) => IrqLine;
  disks?: readonly DiskSpec[];
}

export interface PcieMachine {
  host: PcieHost;
  disks: { spec: DiskSpec; disk: DiskImage; blk: VirtioBlk; fn: VirtioPciFunction; slot: number }[];
  /** Per-disk counters for the boot summary. */
  stats(): { path: string; slot: string; overlayBytes: number; notifications: number; stats: VirtioBlkStats }[];
  /** Close the image files (call when the VM ends). */
  close(): void;
}

export function createPcieHost(layout: PcieLayout, opts: PcieWiringOptions): PcieMachine {
  const host = new PcieHost(layout, opts.irq);
  const disks: PcieMachine['disks'] = [];
  try {
    for (const [i, spec] of (opts.disks ?? []).entries()) {
      const disk = DiskImage.open(spec.path, { writable: spec.writable, readOnly: spec.readOnly });
      const blk = new VirtioBlk(disk, `m1prep-disk${i}`);
      const fn = new VirtioPciFunction(`virtio-blk${i}`, blk, opts.mem);
      const slot = host.freeDevice();
      host.addFunction(slot, 0, fn);
      disks.push({ spec, disk, blk, fn, slot });
    }
    host.attach(opts.bus);
  } catch (e) {
    for (const d of disks) d.disk.close();
    throw e;
  }
  return {
    host,
    disks,
    stats: () => disks.map((d) => ({
      path: d.spec.path,
      slot: `00:${d.slot.toString(16).padStart(2, '0')}.0`,
      overlayBytes: d.disk.overlayBytes,
      notifications: d.fn.notifications,
      stats: { ...d.blk.stats },
    })),
    close: () => { for (const d of disks) d.disk.close(); },
  };
}
