// The CPU backend contract, shared by the software engine (Unicorn) and KVM. A backend turns guest
// execution into exits; the run loop (src/vmm/run-loop.ts) turns exits into device calls. The loop
// is testable with a scripted backend that produces synthetic exits, without any engine.

export type VcpuExit =
  /** A load or store to an address that is not RAM. For a read the loop calls completeMmioRead. */
  | { kind: 'mmio'; addr: bigint; size: 1 | 2 | 4 | 8; write: boolean; value: bigint; reg: number }
  /** An access to a system register the backend does not handle itself (Apple IMPDEF, timers...).
   *  op0..op2/crn/crm name it as in MRS/MSR; for a read the loop calls completeSysregRead. */
  | { kind: 'sysreg'; op0: number; op1: number; crn: number; crm: number; op2: number; write: boolean; value: bigint; reg: number }
  /** WFI: the vCPU waits for an interrupt. */
  | { kind: 'wfi' }
  /** The vCPU's slice (instruction or time budget) ran out; nothing to do. */
  | { kind: 'yield' }
  /** HVC/SMC the guest made (PSCI on Linux guests, if the layout offers it). */
  | { kind: 'hypercall'; smc: boolean; imm: number }
  /** A guest breakpoint or single-step completed (gdb stub). */
  | { kind: 'debug' }
  /** The guest can no longer run: stuck exception loop, unrecoverable engine error. */
  | { kind: 'fatal'; reason: string }
  /** The vCPU was stopped from outside (stop(), timeout). */
  | { kind: 'stopped' };

export interface VcpuRegs {
  x: bigint[]; // x0..x30
  sp: bigint;
  pc: bigint;
  pstate: bigint;
}

/** Serves an exit synchronously (calls completeMmioRead / completeSysregRead for reads). */
export type ExitHandler = (vcpu: Vcpu, exit: VcpuExit) => void;

export interface Vcpu {
  readonly index: number;
  /** Run until the next exit. Blocking for KVM (inside the vCPU worker), a slice for software. */
  run(): VcpuExit;
  completeMmioRead(value: bigint): void;
  completeSysregRead(value: bigint): void;
  /** Level of the IRQ / FIQ input of this vCPU (the AIC drives these). */
  setIrq(level: boolean): void;
  setFiq(level: boolean): void;
  getRegs(): VcpuRegs;
  setRegs(r: Partial<VcpuRegs>): void;
  /** Power on at `pc` with x0 = `arg` (boot CPU, PMGR start, spin table). */
  start(pc: bigint, arg: bigint): void;
  readonly running: boolean;
  /** Guest instructions retired so far, if the backend can count them. */
  instructions(): bigint;
  stop(): void;
  /** Backends that can serve MMIO and system-register exits without leaving the engine (the
   *  software one) call this handler inline instead of returning those exits from run(). */
  setExitHandler?(handler: ExitHandler): void;
  /** Read a system register by encoding (gdb, diagnostics); null if the backend cannot. */
  readSysreg?(op0: number, op1: number, crn: number, crm: number, op2: number): bigint | null;
  /** Breakpoints (virtual addresses) for the gdb stub; run() returns a 'debug' exit on a hit. */
  setBreakpoints?(addrs: readonly bigint[]): void;
  /** Execute exactly one instruction (gdb single step). */
  step?(): VcpuExit;
  /** End the current slice early (software backends): another vCPU was just interrupted by this
   *  one (an IPI), so hand over the turn instead of spinning until the budget runs out. */
  endSlice?(): void;
  /** This vCPU's FastIPI-pending word changed (backends with fastIpiInVcpu). */
  ipiChanged?(): void;
  /** Exits the backend served without the run loop (a KVM vCPU thread), by kind. */
  ownExits?(): Record<string, number>;
  /** Instruction budget of one run() slice, for backends that run in slices. */
  sliceInstructions?: number;
}

/** What the guest sees as its CPU identity (MIDR_EL1, REVIDR...). */
export interface VcpuIdentity {
  midr: bigint;
}

/** Decides which system registers the VMM emulates (IMPDEF space, trapped timers...). */
export type SysregFilter = (op0: number, op1: number, crn: number, crm: number, op2: number) => boolean;

/** Device and system-register state in shared memory that a backend may serve accesses from off
 *  the main thread (a KVM vCPU thread): see src/vmm/devices/uart-shared.ts, sysregs/m1-shared.ts. */
export interface SharedDeviceState {
  uarts: Array<{ base: bigint; size: bigint; buffer: SharedArrayBuffer }>;
  /** `mpidr`: each vCPU's MPIDR, to find an IPI_RR's target. */
  sysregs: { cpus: number; buffer: SharedArrayBuffer; mpidr: bigint[] } | null;
}

export interface RamRegion {
  base: bigint;
  size: bigint;
  /** Host memory that backs the region (shared by every vCPU). */
  bytes: Uint8Array;
}

export interface CpuBackend {
  readonly name: 'software' | 'kvm';
  /** The vCPUs' FIQ lines follow the FastIPI-pending words of the system-register state
   *  themselves (KVM): the machine calls Vcpu.ipiChanged() instead of driving a FIQ source. */
  readonly fastIpiInVcpu?: boolean;
  /** False where guest instructions cannot be counted (KVM runs the guest natively). */
  readonly countsInstructions?: boolean;
  /** Library / kernel interface behind it, for the boot summary ("unicorn 2.1.1"). */
  readonly description?: string;
  /** Host memory for guest RAM, when the backend needs its own (KVM maps page-aligned memory). */
  allocateRam?(size: bigint): Uint8Array;
  /** Map guest RAM (called once per region before vCPUs are created). */
  mapRam(region: RamRegion): void;
  /** Offered before the vCPUs are created; backends that run vCPUs on other threads use it. */
  shareDeviceState?(state: SharedDeviceState): void;
  createVcpu(index: number, mpidr: bigint, identity?: VcpuIdentity): Vcpu;
  /** Code or page tables in RAM changed behind the guest's back (loader, patches): drop caches. */
  invalidateCode(base: bigint, size: bigint): void;
  destroy(): void;
}
