import type { IrqLine } from '../device.js';
import { formatSysreg, isImpdef, sysregFromKey, sysregKey, type SysregEncoding } from './encoding.js';
import { M1_SYSREG_ENTRIES, M1SysregShared, ipiRequest, m1SysregEntry } from './m1-shared.js';

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

const IPI_SR_PENDING = 1n;

export class M1SysregFile {
  /** Values and IPI-pending bits, shared with vCPU threads that serve the simple accesses. */
  readonly shared: M1SysregShared;
  /** Unknown IMPDEF registers seen: "s3_x_cN_cM_y" -> access count. */
  readonly unknown = new Map<string, number>();
  private served = 0;
  onUnknown: ((name: string, access: SysregAccess) => void) | null = null;

  constructor(
    private readonly topology: M1CpuTopology,
    /** FastIPI FIQ source of each vCPU. */
    private readonly ipiLines: readonly IrqLine[],
    private readonly counter: () => bigint,
  ) {
    this.shared = new M1SysregShared(topology.mpidr.length);
    this.resetValues();
  }

  /** Total IMPDEF/overridden accesses served, here and by vCPU threads (boot summary). */
  get accesses(): number {
    return this.served + this.shared.hotAccesses;
  }

  /** Whether this file serves the register: the IMPDEF space and the architectural overrides. */
  handles(e: SysregEncoding): boolean {
    return isImpdef(e) || m1SysregEntry(sysregKey(e)) !== undefined;
  }

  nameOf(e: SysregEncoding | number): string {
    const key = typeof e === 'number' ? e : sysregKey(e);
    const entry = m1SysregEntry(key);
    return entry !== undefined ? M1_SYSREG_ENTRIES[entry]!.name : formatSysreg(sysregFromKey(key));
  }

  isIpiPending(cpu: number): boolean {
    return cpu < this.shared.cpus && this.shared.ipiPending(cpu);
  }

  /** Serve one access; returns the value read (0 for writes). */
  access(a: SysregAccess): bigint {
    return this.accessKey(sysregKey(a), a.write, a.value, a.cpu);
  }

  /** access() by numeric key (sysregKey), the run loop's hot path. */
  accessKey(key: number, write: boolean, value: bigint, cpu: number): bigint {
    this.served++;
    const entry = m1SysregEntry(key);
    const a = { write, value, cpu };
    if (entry === undefined) {
      const enc = sysregFromKey(key);
      const name = formatSysreg(enc);
      const seen = this.unknown.get(name) ?? 0;
      this.unknown.set(name, seen + 1);
      if (seen === 0) this.onUnknown?.(name, { ...enc, ...a });
      return 0n;
    }
    const def = M1_SYSREG_ENTRIES[entry]!;
    const sh = this.shared;
    switch (def.kind) {
      case 'store':
        if (a.write) sh.setValue(entry, a.cpu, a.value);
        return a.write ? 0n : sh.value(entry, a.cpu);
      case 'zero':
        return 0n;
      case 'counter':
        return a.write ? 0n : this.counter();
      case 'ipi-cr':
        if (a.write) sh.setValue(entry, a.cpu, a.value & 0xffffn);
        return a.write ? 0n : sh.value(entry, a.cpu);
      case 'ipi-sr':
        if (a.write) {
          if (a.value & IPI_SR_PENDING) this.setIpi(a.cpu, false);
          return 0n;
        }
        return sh.ipiPending(a.cpu) ? IPI_SR_PENDING : 0n;
      case 'ipi-local':
      case 'ipi-global': {
        if (!a.write) return 0n;
        const req = ipiRequest(def.kind, a.value, a.cpu, this.topology.mpidr);
        if (req) this.setIpi(req.target, req.pending);
        return 0n;
      }
    }
  }

  private setIpi(cpu: number, pending: boolean): void {
    this.shared.setIpiPending(cpu, pending);
    this.ipiLines[cpu]?.set(pending);
  }

  private resetValues(): void {
    M1_SYSREG_ENTRIES.forEach((def, entry) => {
      for (let cpu = 0; cpu < this.shared.cpus; cpu++) this.shared.setValue(entry, cpu, def.reset ?? 0n);
    });
  }

  reset(): void {
    this.resetValues();
    for (let i = 0; i < this.shared.cpus; i++) this.setIpi(i, false);
    this.unknown.clear();
    this.served = 0;
    this.shared.resetCounters();
  }
}
