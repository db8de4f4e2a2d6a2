import type { IrqLine } from '../device.js';
import { formatSysreg, isImpdef, parseSysreg, sysregFromKey, sysregKey, type SysregEncoding } from './encoding.js';
import { M1_ARCH_OVERRIDES, M1_IMPDEF, type SysregDef } from './m1-table.js';

// The M1 IMPLEMENTATION DEFINED system-register file, independent of the CPU backend: the software
// backend calls it on the UNDEF path of an MRS/MSR, a KVM backend will call it on IMPDEF exits.
// Unknown IMPDEF registers read as zero and ignore writes; each is logged once and counted.

export interface SysregAccess extends SysregEncoding {
  write: boolean;
  value: bigint;
  cpu: number;
}

export interface M1CpuTopology {
  /** MPIDR_EL1 of each vCPU, in vCPU order (cluster in Aff1, core in Aff0). */
  mpidr: readonly bigint[];
}

interface Entry {
  def: SysregDef;
  values: bigint[];
}

const IPI_SR_PENDING = 1n;

export class M1SysregFile {
  private readonly table = new Map<number, Entry>();
  private readonly ipiPending: boolean[];
  /** Unknown IMPDEF registers seen: "s3_x_cN_cM_y" -> access count. */
  readonly unknown = new Map<string, number>();
  /** Total IMPDEF/overridden accesses served (boot summary). */
  accesses = 0;
  onUnknown: ((name: string, access: SysregAccess) => void) | null = null;

  constructor(
    private readonly topology: M1CpuTopology,
    /** FastIPI FIQ source of each vCPU. */
    private readonly ipiLines: readonly IrqLine[],
    private readonly counter: () => bigint,
  ) {
    const n = topology.mpidr.length;
    this.ipiPending = new Array<boolean>(n).fill(false);
    for (const def of [...M1_IMPDEF, ...M1_ARCH_OVERRIDES]) {
      this.table.set(sysregKey(parseSysreg(def.enc)), { def, values: new Array<bigint>(n).fill(def.reset ?? 0n) });
    }
  }

  /** Whether this file serves the register: the IMPDEF space and the architectural overrides. */
  handles(e: SysregEncoding): boolean {
    return isImpdef(e) || this.table.has(sysregKey(e));
  }

  nameOf(e: SysregEncoding | number): string {
    const key = typeof e === 'number' ? e : sysregKey(e);
    return this.table.get(key)?.def.name ?? formatSysreg(sysregFromKey(key));
  }

  isIpiPending(cpu: number): boolean {
    return this.ipiPending[cpu] ?? false;
  }

  /** Serve one access; returns the value read (0 for writes). */
  access(a: SysregAccess): bigint {
    return this.accessKey(sysregKey(a), a.write, a.value, a.cpu);
  }

  /** access() by numeric key (sysregKey), the run loop's hot path. */
  accessKey(key: number, write: boolean, value: bigint, cpu: number): bigint {
    this.accesses++;
    const entry = this.table.get(key);
    const a = { write, value, cpu };
    if (!entry) {
      const enc = sysregFromKey(key);
      const name = formatSysreg(enc);
      const seen = this.unknown.get(name) ?? 0;
      this.unknown.set(name, seen + 1);
      if (seen === 0) this.onUnknown?.(name, { ...enc, ...a });
      return 0n;
    }
    const { def, values } = entry;
    switch (def.kind) {
      case 'store':
        if (a.write) values[a.cpu] = a.value;
        return a.write ? 0n : values[a.cpu]!;
      case 'zero':
        return 0n;
      case 'counter':
        return a.write ? 0n : this.counter();
      case 'ipi-cr':
        if (a.write) values[a.cpu] = a.value & 0xffffn;
        return a.write ? 0n : values[a.cpu]!;
      case 'ipi-sr':
        if (a.write) {
          if (a.value & IPI_SR_PENDING) this.setIpi(a.cpu, false);
          return 0n;
        }
        return this.ipiPending[a.cpu] ? IPI_SR_PENDING : 0n;
      case 'ipi-local':
      case 'ipi-global': {
        if (!a.write) return 0n;
        const type = Number((a.value >> 28n) & 3n);
        const core = a.value & 0xffn;
        const myCluster = (this.topology.mpidr[a.cpu]! >> 8n) & 0xffn;
        const cluster = def.kind === 'ipi-local' ? myCluster : (a.value >> 16n) & 0xffn;
        const target = this.topology.mpidr.findIndex((m) => (m & 0xffn) === core && ((m >> 8n) & 0xffn) === cluster);
        // Type 1 (RETRACT) withdraws a deferred request; everything else is delivered now (deferral
        // through IPI_CR only delays it on hardware).
        if (target >= 0) this.setIpi(target, type !== 1);
        return 0n;
      }
    }
  }

  private setIpi(cpu: number, pending: boolean): void {
    this.ipiPending[cpu] = pending;
    this.ipiLines[cpu]?.set(pending);
  }

  reset(): void {
    for (const e of this.table.values()) e.values.fill(e.def.reset ?? 0n);
    for (let i = 0; i < this.ipiPending.length; i++) this.setIpi(i, false);
    this.unknown.clear();
    this.accesses = 0;
  }
}
