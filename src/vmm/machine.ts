import type { VmLayout } from '../dtb/layout.js';
import { UsageError } from '../errors.js';
import { Bus } from './bus.js';
import type { AccessSize, IrqLine, MmioDevice } from './device.js';
import type { CpuBackend, RamRegion, Vcpu } from './cpu/backend.js';
import { createBackend } from './cpu/registry.js';
import { Aic } from './devices/aic.js';
import { createPcieHost, type DiskSpec, type NicSpec, type PcieMachine } from './devices/pcie-wiring.js';
import { RamGuestMemory } from './devices/pcie-dma.js';
import { CpuImplRegs, CpuStartBlock, PmgrPowerStates } from './devices/pmgr.js';
import { S5lUart } from './devices/uart.js';
import { ScratchRegisters } from './devices/scratch.js';
import { AppleWdt } from './devices/wdt.js';
import { CpuLines } from './interrupts.js';
import { GenericTimer, hostCounter, isPhysTimerReg } from './sysregs/generic-timer.js';
import { M1SysregFile } from './sysregs/m1.js';
import { M1_CLUSTERS } from './sysregs/m1-table.js';

// The virtual t8103 machine, built from the layout (src/dtb/layout.ts): RAM, the bus with every
// device at the layout's address, the CPU-local interrupt sources, and one vCPU per selected CPU.

export interface MachineOptions {
  layout: VmLayout;
  /** Number of vCPUs (the first N CPUs of the layout). */
  cpus: number;
  backend: string;
  /** Console bytes from the UART. */
  console: (bytes: Uint8Array) => void;
  disks?: readonly DiskSpec[];
  /** Virtual NICs (virtio-net), each with its host-side link already open. */
  nics?: readonly NicSpec[];
  sliceInstructions?: number;
}

/** Splits the PMGR window between the power-state registers and the CPU start block inside it. */
class PmgrWindow implements MmioDevice {
  readonly name = 'pmgr';
  constructor(readonly states: PmgrPowerStates, readonly start: CpuStartBlock, private readonly startOff: bigint, private readonly startSize: bigint) {}
  private inStart(o: bigint): boolean {
    return o >= this.startOff && o < this.startOff + this.startSize;
  }
  read(o: bigint, s: AccessSize, cpu: number): bigint {
    return this.inStart(o) ? this.start.read(o - this.startOff) : this.states.read(o);
  }
  write(o: bigint, s: AccessSize, v: bigint, cpu: number): void {
    if (this.inStart(o)) this.start.write(o - this.startOff, s, v);
    else this.states.write(o, s, v);
  }
  reset(): void {
    this.states.reset();
    this.start.reset();
  }
}

export class Machine {
  readonly ram: RamRegion;
  readonly bus = new Bus();
  readonly lines: CpuLines;
  readonly aic: Aic;
  readonly uart: S5lUart;
  readonly wdt: AppleWdt;
  readonly pmgr: PmgrWindow;
  readonly cpuImpl: CpuImplRegs[] = [];
  readonly timers: GenericTimer[] = [];
  readonly sysregs: M1SysregFile;
  readonly backend: CpuBackend;
  readonly vcpus: Vcpu[] = [];
  readonly pcie: PcieMachine;
  readonly counter = hostCounter;
  /** Spin-table release addresses still watched: vCPU -> guest physical address. */
  readonly releaseWatch = new Map<number, bigint>();
  /** Set when the watchdog resets the system. */
  resetRequested = false;

  constructor(readonly layout: VmLayout, opts: MachineOptions) {
    // One typed array backs guest RAM (shared with every engine): V8 caps those at 4 GiB.
    if (layout.ram.size > 1n << 32n) throw new UsageError(`guest RAM of ${layout.ram.size >> 20n} MiB: the VMM supports at most 4096 MiB`);
    const n = opts.cpus;
    if (n < 1 || n > layout.cpus.length) throw new RangeError(`--cpus ${n}: the layout has ${layout.cpus.length} CPUs`);
    const cpuLayouts = layout.cpus.slice(0, n);

    this.lines = new CpuLines(n, { setIrq: () => {}, setFiq: () => {} });
    // FastIPI reaches a vCPU's FIQ through the machine's interrupt lines, or, on backends whose
    // vCPUs follow the shared IPI-pending words themselves (KVM), through the vCPU.
    const ipiLines = cpuLayouts.map((_, i): IrqLine => {
      const source = this.lines.fiqSource(i, 'fast-ipi');
      return {
        set: (level) => {
          if (!this.backend.fastIpiInVcpu) return source.set(level);
          this.lines.onChange?.(i, 'fiq', level, 'fast-ipi');
          this.vcpus[i]?.ipiChanged?.();
        },
      };
    });
    this.sysregs = new M1SysregFile({ mpidr: cpuLayouts.map((c) => c.mpidr) }, ipiLines, this.counter);
    for (let i = 0; i < n; i++) this.timers.push(new GenericTimer(this.counter, this.lines.fiqSource(i, 'timer')));

    this.backend = createBackend(opts.backend, {
      sysregFilter: (op0, op1, crn, crm, op2) => {
        const e = { op0, op1, crn, crm, op2 };
        return isPhysTimerReg(e) || this.sysregs.handles(e);
      },
      sliceInstructions: opts.sliceInstructions,
    });
    const bytes = this.backend.allocateRam?.(layout.ram.size) ?? new Uint8Array(Number(layout.ram.size));
    this.ram = { base: layout.ram.base, size: layout.ram.size, bytes };
    this.backend.mapRam(this.ram);

    this.aic = new Aic(layout.aic.irqs, cpuLayouts.map((_, i) => this.lines.irq(i)));
    this.bus.add(layout.aic.base, layout.aic.size, this.aic);
    this.uart = new S5lUart('uart0', this.aic.input(layout.uart0.irq), opts.console);
    this.bus.add(layout.uart0.base, layout.uart0.size, this.uart);
    this.wdt = new AppleWdt('wdt', this.aic.input(layout.watchdog.irq), () => { this.resetRequested = true; });
    this.bus.add(layout.watchdog.base, layout.watchdog.size, this.wdt);
    const start = new CpuStartBlock({
      cpuOf: (cluster, core) => cpuLayouts.findIndex((c) => c.cluster === cluster && c.core === core),
      resetVector: (cpu) => this.cpuImpl[cpu]!.rvbar & ~3n,
      startCpu: (cpu, pc) => this.startCpu(cpu, pc, 0n),
    });
    this.pmgr = new PmgrWindow(new PmgrPowerStates(), start, layout.pmgr.cpuStart.base - layout.pmgr.base, layout.pmgr.cpuStart.size);
    this.bus.add(layout.pmgr.base, layout.pmgr.size, this.pmgr);
    for (const c of cpuLayouts) {
      const impl = new CpuImplRegs(`cpu${c.index}-impl`);
      this.cpuImpl.push(impl);
      this.bus.add(c.implReg.base, c.implReg.size, impl);
    }
    for (const cl of layout.clusters) {
      if (cl.accImplReg) this.bus.add(cl.accImplReg.base, cl.accImplReg.size, new ScratchRegisters(`cluster${cl.id}-acc`));
      if (cl.cpmImplReg) this.bus.add(cl.cpmImplReg.base, cl.cpmImplReg.size, new ScratchRegisters(`cluster${cl.id}-cpm`));
    }
    this.pcie = createPcieHost(layout.pcie, {
      bus: this.bus,
      mem: new RamGuestMemory([this.ram], (a, s) => this.backend.invalidateCode(a, s)),
      irq: (i) => this.aic.input(i),
      disks: opts.disks,
      nics: opts.nics,
    });

    // State the hot paths of other threads may serve (KVM vCPU threads); --trace turns them off.
    this.uart.shared.enabled = true;
    this.sysregs.shared.enabled = true;
    this.sysregs.shared.ipiHot = this.backend.fastIpiInVcpu === true;
    this.backend.shareDeviceState?.({
      uarts: [{ base: layout.uart0.base, size: layout.uart0.size, buffer: this.uart.shared.buffer }],
      sysregs: { cpus: n, buffer: this.sysregs.shared.buffer, mpidr: cpuLayouts.map((c) => c.mpidr) },
    });
    for (const c of cpuLayouts) {
      const midr = M1_CLUSTERS[c.type === 'P' ? 1 : 0]!.midr;
      this.vcpus.push(this.backend.createVcpu(c.index, c.mpidr, { midr }));
    }
    this.lines.setSink({
      setIrq: (cpu, level) => this.vcpus[cpu]!.setIrq(level),
      setFiq: (cpu, level) => this.vcpus[cpu]!.setFiq(level),
    });
  }

  /** Copy bytes into guest RAM (loaders); drops translated code for the range. */
  load(addr: bigint, data: Uint8Array): void {
    const off = addr - this.ram.base;
    if (off < 0n || off + BigInt(data.length) > this.ram.size) {
      throw new RangeError(`0x${data.length.toString(16)} bytes at 0x${addr.toString(16)} do not fit in RAM [0x${this.ram.base.toString(16)}, 0x${(this.ram.base + this.ram.size).toString(16)})`);
    }
    this.ram.bytes.set(data, Number(off));
    this.backend.invalidateCode(addr, BigInt(data.length));
  }

  readRam64(addr: bigint): bigint {
    const off = Number(addr - this.ram.base);
    return new DataView(this.ram.bytes.buffer, this.ram.bytes.byteOffset).getBigUint64(off, true);
  }

  startCpu(cpu: number, pc: bigint, arg: bigint): void {
    const v = this.vcpus[cpu];
    if (!v || v.running) return;
    this.releaseWatch.delete(cpu);
    v.start(pc, arg);
  }

  /** Spin-table: start a CPU once the guest writes its entry point to the release address. */
  watchRelease(cpu: number, addr: bigint): void {
    if (cpu >= this.vcpus.length) return;
    this.load(addr, new Uint8Array(8));
    this.releaseWatch.set(cpu, addr);
  }

  /** Periodic device work between scheduler rounds. */
  poll(): void {
    this.uart.drainTx();
    for (const [cpu, addr] of this.releaseWatch) {
      const entry = this.readRam64(addr);
      if (entry !== 0n) this.startCpu(cpu, entry, 0n);
    }
    this.wdt.poll();
  }

  destroy(): void {
    this.pcie.close();
    this.backend.destroy();
  }
}
