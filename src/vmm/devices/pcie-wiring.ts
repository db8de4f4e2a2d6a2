import type { PcieLayout } from '../../dtb/layout.js';
import type { Bus } from '../bus.js';
import type { IrqLine } from '../device.js';
import { DiskImage } from './disk-image.js';
import type { GuestMemory } from './pcie-dma.js';
import { PcieHost } from './pcie-host.js';
import { VirtioBlk, type VirtioBlkStats } from './virtio-blk.js';
import { formatMac, VirtioNet, type VirtioNetStats } from './virtio-net.js';
import { VirtioPciFunction } from './virtio-pci.js';
import type { NetLink, NetLinkStats } from '../net/link.js';

// The one call the machine builder makes for the PCIe side of the machine: the ECAM host from the
// layout, one virtio-blk function per disk (slots 1, 2, ... on the root bus), then one virtio-net
// function per NIC in the next free slots, everything mapped on the bus and INTx wired to the AIC
// inputs the layout names.

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
  nics?: readonly NicSpec[];
}

export interface NicSpec {
  /** The host side, already open (src/vmm/net/link.ts); its opener closes it. */
  link: NetLink;
  /** Default: 52:54:00:12:34:56, the last byte counting up per NIC. */
  mac?: Uint8Array;
}

export interface DiskStats {
  path: string;
  slot: string;
  overlayBytes: number;
  notifications: number;
  stats: VirtioBlkStats;
}

export interface NicStats {
  slot: string;
  mac: string;
  link: string;
  notifications: number;
  stats: VirtioNetStats;
  linkStats: NetLinkStats;
}

export interface PcieMachine {
  host: PcieHost;
  disks: { spec: DiskSpec; disk: DiskImage; blk: VirtioBlk; fn: VirtioPciFunction; slot: number }[];
  nics: { spec: NicSpec; net: VirtioNet; fn: VirtioPciFunction; slot: number }[];
  /** Per-disk counters for the boot summary. */
  stats(): DiskStats[];
  /** Per-NIC counters for the boot summary. */
  nicStats(): NicStats[];
  /** Called after a frame from a link was handed to a NIC (the run loop wakes up to deliver it). */
  onActivity: (() => void) | null;
  /** Close the image files (call when the VM ends). */
  close(): void;
}

export function createPcieHost(layout: PcieLayout, opts: PcieWiringOptions): PcieMachine {
  const host = new PcieHost(layout, opts.irq);
  const disks: PcieMachine['disks'] = [];
  const nics: PcieMachine['nics'] = [];
  const slotName = (slot: number) => `00:${slot.toString(16).padStart(2, '0')}.0`;
  try {
    for (const [i, spec] of (opts.disks ?? []).entries()) {
      const disk = DiskImage.open(spec.path, { writable: spec.writable, readOnly: spec.readOnly });
      const blk = new VirtioBlk(disk, `m1prep-disk${i}`);
      const fn = new VirtioPciFunction(`virtio-blk${i}`, blk, opts.mem);
      const slot = host.freeDevice();
      host.addFunction(slot, 0, fn);
      disks.push({ spec, disk, blk, fn, slot });
    }
    for (const [i, spec] of (opts.nics ?? []).entries()) {
      const mac = spec.mac ?? Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, (0x56 + i) & 0xff);
      const nic = new VirtioNet(mac, spec.link);
      spec.link.onFrame = (f) => { nic.receive(f); machine.onActivity?.(); };
      const fn = new VirtioPciFunction(`virtio-net${i}`, nic, opts.mem);
      const slot = host.freeDevice();
      host.addFunction(slot, 0, fn);
      nics.push({ spec, net: nic, fn, slot });
    }
    host.attach(opts.bus);
  } catch (e) {
    for (const d of disks) d.disk.close();
    throw e;
  }
  const machine: PcieMachine = {
    host,
    disks,
    nics,
    onActivity: null,
    nicStats: () => nics.map((n) => ({
      slot: slotName(n.slot),
      mac: formatMac(n.net.mac),
      link: n.spec.link.describe,
      notifications: n.fn.notifications,
      stats: { ...n.net.stats },
      linkStats: { ...n.spec.link.stats },
    })),
    stats: () => disks.map((d) => ({
      path: d.spec.path,
      slot: slotName(d.slot),
      overlayBytes: d.disk.overlayBytes,
      notifications: d.fn.notifications,
      stats: { ...d.blk.stats },
    })),
    // The NIC links belong to whoever opened them (the boot command), not to the machine.
    close: () => { for (const d of disks) d.disk.close(); },
  };
  return machine;
}
