import type { AccessSize, MmioDevice } from '../device.js';
import { findReg } from '../regmap.js';
import { PS_ACTUAL_SHIFT, PS_TARGET, cpuImplRegs, cpuStartRegs, pmgrRegs } from '../regmaps/pmgr.js';

// PMGR power-state registers: every write's target state (bits 3:0) is reported as the actual
// state (bits 7:4) at once, which is what Linux's pmgr-pwrstate and XNU poll for.

export class PmgrPowerStates implements MmioDevice {
  readonly regs = pmgrRegs;
  private readonly states = new Map<number, bigint>();
  readonly writes = new Map<number, bigint>();

  constructor(readonly name = 'pmgr') {}

  read(offset: bigint): bigint {
    const off = Number(offset);
    return this.states.get(off) ?? pmgrRegs.regs[0]!.reset!;
  }

  write(offset: bigint, _size: AccessSize, value: bigint): void {
    const off = Number(offset);
    const target = value & PS_TARGET;
    const v = (value & ~(PS_TARGET << PS_ACTUAL_SHIFT)) | (target << PS_ACTUAL_SHIFT);
    this.states.set(off, v);
    this.writes.set(off, value);
  }

  reset(): void {
    this.states.clear();
    this.writes.clear();
  }
}

/** What a CPU start needs from the machine. */
export interface CpuPowerControl {
  /** vCPU index of (cluster, core), or -1. */
  cpuOf(cluster: number, core: number): number;
  /** Reset vector last written to that vCPU's cpu-impl-reg RVBAR. */
  resetVector(cpu: number): bigint;
  startCpu(cpu: number, pc: bigint): void;
}

/** The CPU start block at PMGR + 0x54000 (m1n1 smp.c). */
export class CpuStartBlock implements MmioDevice {
  readonly regs = cpuStartRegs;
  private sys = 0n;

  constructor(private readonly power: CpuPowerControl, readonly name = 'cpu-start') {}

  read(offset: bigint): bigint {
    return findReg(this.regs, Number(offset))?.def.name === 'CPU_START_SYS' ? this.sys : 0n;
  }

  write(offset: bigint, _size: AccessSize, value: bigint): void {
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return;
    if (hit.def.name === 'CPU_START_SYS') {
      this.sys |= value;
      return;
    }
    const cluster = hit.index;
    for (let core = 0; core < 32; core++) {
      if (!(value & (1n << BigInt(core)))) continue;
      const cpu = this.power.cpuOf(cluster, core);
      if (cpu >= 0) this.power.startCpu(cpu, this.power.resetVector(cpu));
    }
  }

  reset(): void {
    this.sys = 0n;
  }
}

/** One CPU's implementation registers (cpu-impl-reg in the ADT): RVBAR at +0. */
export class CpuImplRegs implements MmioDevice {
  readonly regs = cpuImplRegs;
  rvbar = 0n;

  constructor(readonly name: string) {}

  read(offset: bigint, size: AccessSize): bigint {
    if (offset === 0n) return size === 8 ? this.rvbar : this.rvbar & 0xffffffffn;
    if (offset === 4n) return this.rvbar >> 32n;
    return 0n;
  }

  write(offset: bigint, size: AccessSize, value: bigint): void {
    if ((this.rvbar & 1n) !== 0n) return; // locked
    if (offset === 0n) this.rvbar = size === 8 ? value : (this.rvbar & ~0xffffffffn) | value;
    else if (offset === 4n) this.rvbar = (this.rvbar & 0xffffffffn) | (value << 32n);
  }

  reset(): void {
    this.rvbar = 0n;
  }
}
