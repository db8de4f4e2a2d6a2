import type { AccessSize, MmioDevice } from '../device.js';
import { PciFunction, type PciCapability, put32, get32 } from './pcie-config.js';
import { DmaError, type GuestMemory } from './pcie-dma.js';
import { SplitVirtqueue, VirtioError } from './virtio-queue.js';

// The virtio-over-PCI transport, modern interface only (OASIS virtio v1.2, section 4.1): the
// function's registers live in one memory BAR, found by the driver through vendor-specific
// capabilities (common configuration, notifications, ISR status, device configuration, and the
// PCI configuration access window). No MSI-X: interrupts go out on INTA, which the ISR read
// acknowledges — what Linux's virtio_pci falls back to, and all an ECAM host without an MSI
// controller can carry.

/** A virtio device model (block, ...) behind the transport. */
export interface VirtioDevice {
  /** Virtio device ID (2 = block); the PCI device ID is 0x1040 + this. */
  readonly deviceId: number;
  /** PCI class code the function reports. */
  readonly classCode: number;
  /** Device-specific feature bits (the transport adds VERSION_1 and INDIRECT_DESC). */
  readonly features: bigint;
  /** Maximum size of each virtqueue. */
  readonly queueSizes: readonly number[];
  /** Device configuration space, read by the driver through the device cfg capability. */
  readonly config: Uint8Array;
  /** The driver made buffers available on `queue`: consume them, push used entries. */
  processQueue(queue: number, vq: SplitVirtqueue, mem: GuestMemory): void;
  /** Feature negotiation finished: the bits the driver accepted. */
  driverFeatures?(features: bigint): void;
  /**
   * The transport hands the device a way to serve a queue without a driver notify: a device whose
   * work starts outside the guest (a network frame arriving) calls it, and the transport runs
   * processQueue() and raises the interrupt as it would on a notify.
   */
  attach?(kick: (queue: number) => void): void;
  reset(): void;
}

// Feature bits common to all devices (6 "Reserved Feature Bits").
export const VIRTIO_RING_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_F_VERSION_1 = 1n << 32n;

// Device status bits (2.1).
export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_DEVICE_NEEDS_RESET = 0x40;
export const VIRTIO_STATUS_FAILED = 0x80;

// Capability types (4.1.4).
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
const PCI_CAP_ID_VNDR = 0x09;
export const VIRTIO_PCI_VENDOR = 0x1af4;
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;
const VIRTIO_MSI_NO_VECTOR = 0xffff;

// Where each structure sits in the BAR. 4 KiB apart so that each can be mapped on its own.
export const VIRTIO_BAR_INDEX = 0;
export const VIRTIO_BAR_SIZE = 0x4000n;
export const COMMON_OFFSET = 0x0000;
export const COMMON_LENGTH = 0x38;
export const ISR_OFFSET = 0x1000;
export const DEVICE_OFFSET = 0x2000;
export const NOTIFY_OFFSET = 0x3000;
export const NOTIFY_MULTIPLIER = 4;

// struct virtio_pci_common_cfg field offsets (4.1.4.3).
const CC = {
  deviceFeatureSelect: 0x00, deviceFeature: 0x04, driverFeatureSelect: 0x08, driverFeature: 0x0c,
  msixConfig: 0x10, numQueues: 0x12, deviceStatus: 0x14, configGeneration: 0x15,
  queueSelect: 0x16, queueSize: 0x18, queueMsixVector: 0x1a, queueEnable: 0x1c, queueNotifyOff: 0x1e,
  queueDesc: 0x20, queueDriver: 0x28, queueDevice: 0x30,
} as const;

/** struct virtio_pci_cap (and its notify / pci-cfg extensions) as a PCI capability body. */
function virtioCap(type: number, offset: number, length: number, extra: number | null): PciCapability {
  const body = new Uint8Array(extra === null ? 14 : 18);
  body[0] = body.length + 2; // cap_len counts the ID and next bytes too
  body[1] = type;
  body[2] = type === VIRTIO_PCI_CAP_PCI_CFG ? 0 : VIRTIO_BAR_INDEX;
  put32(body, 6, offset);
  put32(body, 10, length);
  if (extra !== null) put32(body, 14, extra);
  // The PCI cfg window's bar, offset, length and data fields are the driver's to write.
  const writable: [number, number][] = type === VIRTIO_PCI_CAP_PCI_CFG ? [[4, 5], [8, 20]] : [];
  return { id: PCI_CAP_ID_VNDR, body, writable };
}

export class VirtioPciFunction extends PciFunction {
  readonly queues: SplitVirtqueue[];
  private deviceFeatureSelect = 0;
  private driverFeatureSelect = 0;
  private driverFeatureBits = 0n;
  private status = 0;
  private queueSelect = 0;
  private isr = 0;
  readonly offeredFeatures: bigint;
  /** Requests handled, for the boot summary. */
  notifications = 0;

  constructor(name: string, readonly device: VirtioDevice, private readonly mem: GuestMemory) {
    // The BAR's handler needs `this`, which exists only after super(): bind it late.
    const self: { f?: VirtioPciFunction } = {};
    const regs: MmioDevice = {
      name,
      read: (o, s) => self.f!.barRead(o, s),
      write: (o, s, v) => self.f!.barWrite(o, s, v),
      reset: () => {},
    };
    super(name, {
      vendorId: VIRTIO_PCI_VENDOR,
      deviceId: VIRTIO_PCI_DEVICE_BASE + device.deviceId,
      revision: 1, // 4.1.2.1: modern-only devices have revision ID 1 or more
      classCode: device.classCode,
      subsystemVendorId: VIRTIO_PCI_VENDOR,
      subsystemId: VIRTIO_PCI_DEVICE_BASE + device.deviceId,
      interruptPin: 1,
    }, [{ index: VIRTIO_BAR_INDEX, kind: 'mem64', size: VIRTIO_BAR_SIZE, device: regs }], [
      virtioCap(VIRTIO_PCI_CAP_COMMON_CFG, COMMON_OFFSET, COMMON_LENGTH, null),
      virtioCap(VIRTIO_PCI_CAP_ISR_CFG, ISR_OFFSET, 1, null),
      virtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_OFFSET, device.config.length, null),
      virtioCap(VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFFSET, NOTIFY_MULTIPLIER * device.queueSizes.length, NOTIFY_MULTIPLIER),
      virtioCap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0),
    ]);
    self.f = this;
    this.queues = device.queueSizes.map((n) => new SplitVirtqueue(mem, n));
    this.offeredFeatures = device.features | VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC;
    device.attach?.((queue) => this.serve(queue));
  }

  get deviceStatus(): number {
    return this.status;
  }

  override reset(): void {
    super.reset();
    this.resetDevice();
  }

  private resetDevice(): void {
    this.deviceFeatureSelect = this.driverFeatureSelect = 0;
    this.driverFeatureBits = 0n;
    this.status = 0;
    this.queueSelect = 0;
    this.isr = 0;
    for (const q of this.queues) q.reset();
    this.device.reset();
    this.setIntx(false);
  }

  private raise(bits: number): void {
    this.isr |= bits;
    this.setIntx(this.isr !== 0);
  }

  /** The device hit a driver error it cannot continue from (4.1.4.3.1: DEVICE_NEEDS_RESET). */
  private fail(): void {
    this.status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    this.raise(2); // configuration change interrupt tells the driver to look at the status
  }

  private barRead(offset: bigint, size: AccessSize): bigint {
    const o = Number(offset);
    if (o >= COMMON_OFFSET && o < COMMON_OFFSET + COMMON_LENGTH) return BigInt(this.commonRead(o - COMMON_OFFSET, size));
    if (o === ISR_OFFSET) {
      // 4.1.4.5: reading the ISR status acknowledges (clears) it and deasserts INTx.
      const v = this.isr;
      this.isr = 0;
      this.setIntx(false);
      return BigInt(v);
    }
    if (o >= DEVICE_OFFSET && o < DEVICE_OFFSET + this.device.config.length) {
      let v = 0n;
      const c = this.device.config;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(c[o - DEVICE_OFFSET + i] ?? 0);
      return v;
    }
    return 0n;
  }

  private barWrite(offset: bigint, size: AccessSize, value: bigint): void {
    const o = Number(offset);
    if (o >= COMMON_OFFSET && o < COMMON_OFFSET + COMMON_LENGTH) { this.commonWrite(o - COMMON_OFFSET, size, value); return; }
    if (o >= NOTIFY_OFFSET && o < NOTIFY_OFFSET + NOTIFY_MULTIPLIER * this.queues.length) {
      this.notify((o - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER | 0);
    }
    // Device configuration writes: block has only the writeback toggle (VIRTIO_BLK_F_CONFIG_WCE)
    // and net only the legacy MAC write, neither offered, so the space is read-only.
  }

  private get selected(): SplitVirtqueue | undefined {
    return this.queues[this.queueSelect];
  }

  private commonRead(o: number, size: number): number | bigint {
    const q = this.selected;
    switch (o) {
      case CC.deviceFeatureSelect: return this.deviceFeatureSelect;
      case CC.deviceFeature: return this.deviceFeatureSelect < 2 ? Number((this.offeredFeatures >> BigInt(32 * this.deviceFeatureSelect)) & 0xffff_ffffn) : 0;
      case CC.driverFeatureSelect: return this.driverFeatureSelect;
      case CC.driverFeature: return this.driverFeatureSelect < 2 ? Number((this.driverFeatureBits >> BigInt(32 * this.driverFeatureSelect)) & 0xffff_ffffn) : 0;
      case CC.msixConfig: return VIRTIO_MSI_NO_VECTOR;
      case CC.numQueues: return this.queues.length;
      case CC.deviceStatus: return this.status;
      case CC.configGeneration: return 0; // the configuration never changes at run time
      case CC.queueSelect: return this.queueSelect;
      case CC.queueSize: return q ? q.size : 0;
      case CC.queueMsixVector: return VIRTIO_MSI_NO_VECTOR;
      case CC.queueEnable: return q?.enabled ? 1 : 0;
      case CC.queueNotifyOff: return q ? this.queueSelect : 0;
      case CC.queueDesc: return this.addrRead(q?.descAddr, size, 0);
      case CC.queueDesc + 4: return this.addrRead(q?.descAddr, size, 1);
      case CC.queueDriver: return this.addrRead(q?.driverAddr, size, 0);
      case CC.queueDriver + 4: return this.addrRead(q?.driverAddr, size, 1);
      case CC.queueDevice: return this.addrRead(q?.deviceAddr, size, 0);
      case CC.queueDevice + 4: return this.addrRead(q?.deviceAddr, size, 1);
      default: return 0;
    }
  }

  private addrRead(addr: bigint | undefined, size: number, half: number): bigint {
    if (addr === undefined) return 0n;
    return size === 8 ? addr : (addr >> BigInt(32 * half)) & 0xffff_ffffn;
  }

  private addrWrite(old: bigint, size: number, half: number, value: bigint): bigint {
    if (size === 8) return value;
    const shift = BigInt(32 * half);
    return (old & ~(0xffff_ffffn << shift)) | ((value & 0xffff_ffffn) << shift);
  }

  private commonWrite(o: number, size: number, value: bigint): void {
    const v = Number(value & 0xffff_ffffn);
    const q = this.selected;
    switch (o) {
      case CC.deviceFeatureSelect: this.deviceFeatureSelect = v; return;
      case CC.driverFeatureSelect: this.driverFeatureSelect = v; return;
      case CC.driverFeature:
        if (this.driverFeatureSelect < 2 && !(this.status & VIRTIO_STATUS_FEATURES_OK)) {
          const shift = BigInt(32 * this.driverFeatureSelect);
          this.driverFeatureBits = (this.driverFeatureBits & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift);
        }
        return;
      case CC.deviceStatus: this.writeStatus(v & 0xff); return;
      case CC.queueSelect: this.queueSelect = v & 0xffff; return;
      case CC.queueSize: if (q && !q.enabled) q.size = v & 0xffff; return;
      case CC.queueEnable:
        if (q && (v & 1) && !q.enabled) {
          try {
            q.validate();
            q.enabled = true;
          } catch (e) {
            if (!(e instanceof VirtioError) && !(e instanceof DmaError)) throw e;
            this.fail();
          }
        }
        return;
      case CC.queueDesc: case CC.queueDesc + 4:
        if (q && !q.enabled) q.descAddr = this.addrWrite(q.descAddr, size, (o - CC.queueDesc) >> 2, value);
        return;
      case CC.queueDriver: case CC.queueDriver + 4:
        if (q && !q.enabled) q.driverAddr = this.addrWrite(q.driverAddr, size, (o - CC.queueDriver) >> 2, value);
        return;
      case CC.queueDevice: case CC.queueDevice + 4:
        if (q && !q.enabled) q.deviceAddr = this.addrWrite(q.deviceAddr, size, (o - CC.queueDevice) >> 2, value);
        return;
      default: return; // MSI-X vectors (none) and read-only fields
    }
  }

  private writeStatus(v: number): void {
    if (v === 0) { this.resetDevice(); return; }
    if ((v & VIRTIO_STATUS_FEATURES_OK) && !(this.status & VIRTIO_STATUS_FEATURES_OK)) {
      // 3.1.1: accept the features only if they are a subset of ours and include VERSION_1;
      // otherwise FEATURES_OK stays clear and the driver gives up.
      const f = this.driverFeatureBits;
      if ((f & ~this.offeredFeatures) !== 0n || (f & VIRTIO_F_VERSION_1) === 0n) v &= ~VIRTIO_STATUS_FEATURES_OK;
      else this.device.driverFeatures?.(f);
    }
    this.status = (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) | v;
  }

  private notify(queue: number): void {
    if (this.serve(queue)) this.notifications++;
  }

  /** Let the device work on `queue` if the driver has it running; false when it does not. */
  private serve(queue: number): boolean {
    const q = this.queues[queue];
    if (!q || !q.enabled || !(this.status & VIRTIO_STATUS_DRIVER_OK) || (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) return false;
    try {
      this.device.processQueue(queue, q, this.mem);
    } catch (e) {
      if (!(e instanceof VirtioError) && !(e instanceof DmaError)) throw e;
      this.fail();
    }
    if (q.takeInterrupt()) this.raise(1);
    return true;
  }

  // --- The VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9): BAR access through configuration space.

  private get pciCfgCap(): number {
    return this.capabilityOffsets[this.capabilityOffsets.length - 1]!;
  }

  private pciCfgTarget(): { offset: bigint; size: AccessSize } | null {
    const cap = this.pciCfgCap;
    const bar = this.config[cap + 4]!;
    const offset = get32(this.config, cap + 8);
    const length = get32(this.config, cap + 12);
    if (bar !== VIRTIO_BAR_INDEX || (length !== 1 && length !== 2 && length !== 4)) return null;
    if (offset % length !== 0 || BigInt(offset + length) > VIRTIO_BAR_SIZE) return null;
    return { offset: BigInt(offset), size: length };
  }

  protected override beforeConfigRead(offset: number, size: number): void {
    const data = this.pciCfgCap + 16;
    if (offset + size <= data || offset >= data + 4) return;
    const t = this.pciCfgTarget();
    if (t) put32(this.config, data, Number(this.barRead(t.offset, t.size)));
  }

  protected override afterConfigWrite(offset: number, size: number): void {
    const data = this.pciCfgCap + 16;
    if (offset + size <= data || offset >= data + 4) return;
    const t = this.pciCfgTarget();
    if (t) this.barWrite(t.offset, t.size, BigInt(get32(this.config, data)) & ((1n << BigInt(8 * t.size)) - 1n));
  }
}
