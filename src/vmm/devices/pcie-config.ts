import type { AccessSize, MmioDevice } from '../device.js';

// The configuration space of one PCI function (type 0 header), as the generic ECAM host exposes it.
// Register offsets and bit meanings are those of the PCI Local Bus Specification 3.0 (chapter 6)
// and Linux's include/uapi/linux/pci_regs.h. The space is a byte array with a per-byte write mask,
// which makes BAR sizing fall out naturally: writing all ones to a BAR reads back ~(size - 1) plus
// its read-only type bits, exactly what the guest's sizing code expects.

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS_INTERRUPT = 0x8;
export const PCI_STATUS_CAP_LIST = 0x10;

export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;

/** Size of one function's configuration space in ECAM (PCIe extended space included). */
export const PCI_CFG_SPACE_EXP_SIZE = 4096;

export type BarKind = 'mem32' | 'mem64' | 'io';

export interface BarSpec {
  /** BAR register number 0..5 (a mem64 BAR also occupies index + 1). */
  index: number;
  kind: BarKind;
  /** A power of two: 16 bytes at least for memory, 4 for I/O (the PCI rules). */
  size: bigint;
  prefetchable?: boolean;
  /** Handles accesses at offsets inside the BAR once the guest has placed it. */
  device: MmioDevice;
}

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  revision: number;
  /** 24-bit class code: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 1..4 for INTA..INTD, 0 for a function without legacy interrupt. */
  interruptPin: number;
}

/** One capability in the standard list: its ID and the bytes after the ID/next-pointer pair. */
export interface PciCapability {
  id: number;
  /** Capability body from offset 2 (the ID and next pointer are filled in). */
  body: Uint8Array;
  /** Bytes of the capability (offsets from its start) the guest may write. */
  writable?: readonly [start: number, end: number][];
}

const CAPS_START = 0x40;

export class PciFunction {
  readonly config = new Uint8Array(PCI_CFG_SPACE_EXP_SIZE);
  private readonly writeMask = new Uint8Array(PCI_CFG_SPACE_EXP_SIZE);
  private readonly initial: Uint8Array;
  readonly bars: readonly BarSpec[];
  /** Where each capability landed in config space, in the order given. */
  readonly capabilityOffsets: number[] = [];
  /** Set by the host: called whenever the function's INTx output or its enable changes. */
  onIntxChange: (() => void) | null = null;
  private intxLevel = false;

  constructor(
    readonly name: string,
    id: PciIdentity,
    bars: readonly BarSpec[] = [],
    capabilities: readonly PciCapability[] = [],
  ) {
    this.bars = bars;
    const c = this.config;
    put16(c, PCI_VENDOR_ID, id.vendorId);
    put16(c, PCI_DEVICE_ID, id.deviceId);
    c[PCI_REVISION_ID] = id.revision;
    c[PCI_CLASS_PROG] = id.classCode & 0xff;
    c[PCI_CLASS_PROG + 1] = (id.classCode >> 8) & 0xff;
    c[PCI_CLASS_PROG + 2] = (id.classCode >> 16) & 0xff;
    put16(c, PCI_SUBSYSTEM_VENDOR_ID, id.subsystemVendorId ?? 0);
    put16(c, PCI_SUBSYSTEM_ID, id.subsystemId ?? 0);
    c[PCI_INTERRUPT_PIN] = id.interruptPin;
    this.allowWrite(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
      PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    this.allowWrite(PCI_CACHE_LINE_SIZE, 1, 0xff);
    this.allowWrite(PCI_LATENCY_TIMER, 1, 0xff);
    this.allowWrite(PCI_INTERRUPT_LINE, 1, 0xff);

    for (const bar of bars) this.defineBar(bar);

    let at = CAPS_START;
    let prevNext = PCI_CAPABILITY_LIST;
    for (const cap of capabilities) {
      const len = 2 + cap.body.length;
      if (at + len > 0x100) throw new Error(`pci ${name}: capabilities do not fit in 256 bytes`);
      c[prevNext] = at;
      c[at] = cap.id;
      c.set(cap.body, at + 2);
      for (const [s, e] of cap.writable ?? []) for (let i = s; i < e; i++) this.writeMask[at + i] = 0xff;
      this.capabilityOffsets.push(at);
      prevNext = at + 1;
      at = (at + len + 3) & ~3;
    }
    if (capabilities.length > 0) put16(c, PCI_STATUS, PCI_STATUS_CAP_LIST);
    this.initial = c.slice();
  }

  private allowWrite(offset: number, width: number, mask: number): void {
    for (let i = 0; i < width; i++) this.writeMask[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  private defineBar(bar: BarSpec): void {
    const { index, kind, size } = bar;
    const minimum = kind === 'io' ? 4n : 16n;
    if (size < minimum || (size & (size - 1n)) !== 0n) throw new Error(`pci ${this.name}: BAR${index} size ${size} is not a power of two >= ${minimum}`);
    if (index < 0 || index > (kind === 'mem64' ? 4 : 5)) throw new Error(`pci ${this.name}: BAR${index} out of range`);
    const reg = PCI_BASE_ADDRESS_0 + 4 * index;
    const flags = kind === 'io' ? PCI_BASE_ADDRESS_SPACE_IO
      : (kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    put32(this.config, reg, flags);
    const flagBits = kind === 'io' ? 0x3n : 0xfn;
    const addrMask = ~(size - 1n) & ~flagBits;
    this.allowWrite(reg, 4, Number(addrMask & 0xffff_ffffn));
    if (kind === 'mem64') this.allowWrite(reg + 4, 4, Number((~(size - 1n) >> 32n) & 0xffff_ffffn));
  }

  /** Config-space read of 1, 2 or 4 bytes (ECAM offsets inside this function). */
  readConfig(offset: number, size: AccessSize): number {
    if (offset + size > PCI_CFG_SPACE_EXP_SIZE) return 0;
    this.beforeConfigRead(offset, size);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.config[offset + i]!;
    return v >>> 0;
  }

  writeConfig(offset: number, size: AccessSize, value: number): void {
    if (offset + size > PCI_CFG_SPACE_EXP_SIZE) return;
    const oldCommand = this.command;
    for (let i = 0; i < size; i++) {
      const m = this.writeMask[offset + i]!;
      const b = (value >>> (8 * i)) & 0xff;
      this.config[offset + i] = (this.config[offset + i]! & ~m) | (b & m);
    }
    if (((oldCommand ^ this.command) & PCI_COMMAND_INTX_DISABLE) !== 0) this.onIntxChange?.();
    this.afterConfigWrite(offset, size);
  }

  /** Hooks for functions whose capabilities have side effects (virtio's PCI cfg access window). */
  protected beforeConfigRead(_offset: number, _size: number): void {}
  protected afterConfigWrite(_offset: number, _size: number): void {}

  get command(): number {
    return this.config[PCI_COMMAND]! | (this.config[PCI_COMMAND + 1]! << 8);
  }

  /** The bus address the guest assigned to a BAR (flag bits removed). */
  barAddress(bar: BarSpec): bigint {
    const reg = PCI_BASE_ADDRESS_0 + 4 * bar.index;
    const low = BigInt(get32(this.config, reg));
    if (bar.kind === 'io') return low & ~0x3n;
    const high = bar.kind === 'mem64' ? BigInt(get32(this.config, reg + 4)) << 32n : 0n;
    return high | (low & ~0xfn);
  }

  /** Whether the function decodes accesses to this BAR right now (command register enables). */
  barEnabled(bar: BarSpec): boolean {
    return (this.command & (bar.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) !== 0;
  }

  /** The device's own interrupt condition (level). The host sees it through intxAsserted. */
  setIntx(level: boolean): void {
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    const status = this.config[PCI_STATUS]!;
    this.config[PCI_STATUS] = level ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT;
    this.onIntxChange?.();
  }

  /** The level on the function's INTx pin: the condition, unless the driver disabled INTx. */
  get intxAsserted(): boolean {
    return this.intxLevel && (this.command & PCI_COMMAND_INTX_DISABLE) === 0;
  }

  get interruptPin(): number {
    return this.config[PCI_INTERRUPT_PIN]!;
  }

  reset(): void {
    this.config.set(this.initial);
    this.intxLevel = false;
    for (const bar of this.bars) bar.device.reset();
    this.onIntxChange?.();
  }
}

export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

export function put32(b: Uint8Array, off: number, v: number): void {
  put16(b, off, v);
  put16(b, off + 2, v >>> 16);
}

export function get32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}
