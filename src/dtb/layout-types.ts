// The virtual M1 machine as typed data, loaded from layouts/*.yaml by loadLayout() (layout.ts).
// The VMM places devices from these values (or from deviceMap()), the device-tree derivations
// write them into the ADT and the FDT. Every address and size is a bigint; IRQ numbers are AIC
// hardware IRQ inputs, FIQ numbers are the AIC FIQ indices of Linux's apple-aic.h binding.
// These types are a contract with the VMM and boot code: extend them, do not change them.

/** A physical address window [base, base + size). */
export interface Window {
  base: bigint;
  size: bigint;
}

/** A PCI address window: CPU physical `base` maps to PCI bus address `pciBase`. */
export interface PciWindow extends Window {
  pciBase: bigint;
}

/** A device with one interrupt line into the AIC. */
export interface IrqDevice extends Window {
  /** AIC hardware IRQ number. */
  irq: number;
}

/** E = Icestorm efficiency core, P = Firestorm performance core. */
export type CoreType = 'E' | 'P';

export interface CpuLayout {
  /** Logical CPU number: the position in the layout (clusters in order, cores in order). */
  index: number;
  cluster: number;
  core: number;
  type: CoreType;
  /** MPIDR_EL1 affinity bits (Aff2.Aff1.Aff0), without bit 31; the VMM sets VMPIDR_EL2 from it. */
  mpidr: bigint;
  /** Per-core implementation-defined block (ADT cpu-impl-reg); RVBAR (reset vector) at +0. */
  implReg: Window;
}

export interface ClusterLayout {
  id: number;
  type: CoreType;
  /** Cluster controller (ADT acc-impl-reg), if the layout provides it. */
  accImplReg?: Window;
  /** Cluster power manager (ADT cpm-impl-reg), if the layout provides it. */
  cpmImplReg?: Window;
  /** Logical CPU numbers of this cluster's cores, in core order. */
  cpus: number[];
}

export interface AicLayout extends Window {
  /** Number of hardware IRQ inputs (AIC_INFO); 896 on t8103. */
  irqs: number;
  /** The timebase block inside the AIC window (absolute address), if described. */
  timebase?: Window;
  /** IPIs go through the Fast IPI system registers (FIQ), not AIC IPIs. */
  fastIpi: boolean;
}

export type TimerName = 'phys' | 'virt' | 'hyp-phys' | 'hyp-virt';

export interface TimerIrq {
  /** Which timer, as in the arm,armv8-timer binding's interrupt-names. */
  name: TimerName;
  /** AIC FIQ index (AIC_TMR_GUEST_PHYS = 2 ...). */
  fiq: number;
}

export interface PowerState {
  /** Label as in Linux's t8103-pmgr.dtsi (ps_<name>). */
  name: string;
  /** Register offset inside the PMGR window. */
  offset: bigint;
  /** Absolute address of the register (pmgr.base + offset). */
  address: bigint;
  /** Name of the power state this one depends on. */
  parent?: string;
}

export interface PmgrLayout extends Window {
  /** The CPU start block (absolute): +0x4 cluster/core mask, +0x8 + 4 * cluster per-core mask. */
  cpuStart: Window;
  /** Power-state registers the guests use. */
  powerStates: PowerState[];
}

export interface PcieLayout {
  /** ECAM configuration space, 1 MiB per bus from busRange[0]. */
  ecam: Window;
  busRange: [number, number];
  io: PciWindow;
  mmio32: PciWindow;
  mmio64: PciWindow;
  /** AIC IRQs for INTA..INTD of slot 0; see pcieIntxIrq() for other slots. */
  intx: [number, number, number, number];
}

export interface XnuBootLayout {
  kernel: Window;
  deviceTree: Window;
  bootArgs: Window;
  ramdisk: Window;
}

export interface LinuxBootLayout {
  /** Reserved page holding the spin-table release addresses. */
  spinTable: Window;
  image: Window;
  fdt: Window;
  initrd: Window;
  /** cpu-release-addr per logical CPU (spinTable.base + 8 * index). */
  releaseAddrs: bigint[];
}

export interface VmLayout {
  name: string;
  /** The file it was loaded from, when known (for messages). */
  file?: string;
  ram: Window;
  clusters: ClusterLayout[];
  /** All CPUs in logical order. */
  cpus: CpuLayout[];
  aic: AicLayout;
  timer: { interrupts: TimerIrq[] };
  uart0: IrqDevice;
  pmgr: PmgrLayout;
  watchdog: IrqDevice;
  pcie: PcieLayout;
  boot: { xnu: XnuBootLayout; linux: LinuxBootLayout };
}

export type DeviceKind =
  | 'ram'
  | 'aic'
  | 'uart'
  | 'pmgr'
  | 'watchdog'
  | 'cpu-impl'
  | 'cluster-acc'
  | 'cluster-cpm'
  | 'pcie-ecam'
  | 'pcie-io'
  | 'pcie-mmio32'
  | 'pcie-mmio64';

/** One entry of the physical address map (deviceMap()). */
export interface DeviceMapEntry {
  name: string;
  kind: DeviceKind;
  base: bigint;
  size: bigint;
  irq?: number;
  /** For cpu-impl: the logical CPU number. */
  cpu?: number;
  /** For cluster-acc / cluster-cpm: the cluster id. */
  cluster?: number;
}
