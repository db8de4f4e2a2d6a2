import { M1_ARCH_OVERRIDES, M1_IMPDEF, type SysregDef } from './m1-table.js';
import { parseSysreg, sysregKey } from './encoding.js';

// The M1 system-register file's storage in one SharedArrayBuffer, so that a KVM vCPU thread can
// serve the accesses that need nothing but this storage (PMCR0 and the PMU, HID chicken bits,
// error-status zeros, IPI_SR reads: Linux's FIQ handler reads PMCR0, UPMCR0 and IPI_SR on every
// timer tick) without a round trip to the main thread. FastIPI requests and clears (IPI_RR, a
// pending IPI_SR cleared) change an interrupt line: a vCPU thread serves them only where the
// backend drives the FIQ lines from the IPI-pending words itself (IPI_HOT, and a callback that
// brings the target's line up to date); elsewhere they, the counter alias and unknown registers
// go to M1SysregFile (m1.ts) on the main thread.
//
// Layout: ctl words [ENABLED, HOT_ACCESSES, IPI_HOT], one IPI-pending word per vCPU, then one
// 64-bit value per (table entry, vCPU); each vCPU only ever touches its own values.

const ENABLED = 0;
const HOT_ACCESSES = 1;
const IPI_HOT = 2;
const CTL_WORDS = 4;
const IPI_SR_PENDING = 1n;

/** Every register of the table, in storage order. */
export const M1_SYSREG_ENTRIES: readonly SysregDef[] = [...M1_IMPDEF, ...M1_ARCH_OVERRIDES];
const ENTRY_OF = new Map<number, number>(M1_SYSREG_ENTRIES.map((d, i) => [sysregKey(parseSysreg(d.enc)), i]));

export function m1SysregEntry(key: number): number | undefined {
  return ENTRY_OF.get(key);
}

/** What an MSR to IPI_RR_LOCAL/GLOBAL_EL1 from `cpu` asks: the target vCPU (by MPIDR: core in
 *  bits 7:0, cluster in bits 23:16 for GLOBAL, the sender's cluster for LOCAL) and whether its
 *  IPI becomes pending. Type 1 (RETRACT, bits 29:28) withdraws a deferred request; everything else
 *  is delivered now (deferral through IPI_CR only delays it on hardware). null: no such vCPU. */
export function ipiRequest(kind: 'ipi-local' | 'ipi-global', value: bigint, cpu: number, mpidr: readonly bigint[]): { target: number; pending: boolean } | null {
  const type = Number((value >> 28n) & 3n);
  const core = value & 0xffn;
  const cluster = kind === 'ipi-local' ? (mpidr[cpu]! >> 8n) & 0xffn : (value >> 16n) & 0xffn;
  const target = mpidr.findIndex((m) => (m & 0xffn) === core && ((m >> 8n) & 0xffn) === cluster);
  return target >= 0 ? { target, pending: type !== 1 } : null;
}

export class M1SysregShared {
  readonly ctl: Int32Array;
  readonly ipi: Int32Array;
  readonly values: BigUint64Array;

  constructor(readonly cpus: number, readonly buffer = new SharedArrayBuffer(M1SysregShared.bytes(cpus))) {
    if (buffer.byteLength < M1SysregShared.bytes(cpus)) throw new RangeError(`system-register state for ${cpus} vCPUs needs ${M1SysregShared.bytes(cpus)} bytes`);
    this.ctl = new Int32Array(buffer, 0, CTL_WORDS);
    this.ipi = new Int32Array(buffer, CTL_WORDS * 4, cpus);
    this.values = new BigUint64Array(buffer, M1SysregShared.valuesOffset(cpus), M1_SYSREG_ENTRIES.length * cpus);
  }

  private static valuesOffset(cpus: number): number {
    return Math.ceil(((CTL_WORDS + cpus) * 4) / 8) * 8;
  }

  static bytes(cpus: number): number {
    return M1SysregShared.valuesOffset(cpus) + 8 * M1_SYSREG_ENTRIES.length * cpus;
  }

  get enabled(): boolean {
    return Atomics.load(this.ctl, ENABLED) === 1;
  }

  set enabled(on: boolean) {
    Atomics.store(this.ctl, ENABLED, on ? 1 : 0);
  }

  /** FastIPI requests and clears may be served off the main thread (see above). */
  get ipiHot(): boolean {
    return Atomics.load(this.ctl, IPI_HOT) === 1;
  }

  set ipiHot(on: boolean) {
    Atomics.store(this.ctl, IPI_HOT, on ? 1 : 0);
  }

  get hotAccesses(): number {
    return Atomics.load(this.ctl, HOT_ACCESSES);
  }

  resetCounters(): void {
    Atomics.store(this.ctl, HOT_ACCESSES, 0);
  }

  value(entry: number, cpu: number): bigint {
    return this.values[entry * this.cpus + cpu]!;
  }

  setValue(entry: number, cpu: number, v: bigint): void {
    this.values[entry * this.cpus + cpu] = BigInt.asUintN(64, v);
  }

  ipiPending(cpu: number): boolean {
    return Atomics.load(this.ipi, cpu) !== 0;
  }

  setIpiPending(cpu: number, pending: boolean): void {
    Atomics.store(this.ipi, cpu, pending ? 1 : 0);
  }

  /** Serve an access off the main thread: the value read (0n for a write), or null when it must
   *  go to M1SysregFile (an effect beyond this storage, or a register the table lacks). With
   *  `ipi` (the vCPU topology and a call that updates a vCPU's FIQ line from its pending word)
   *  and IPI_HOT set, FastIPI requests and clears are served too. */
  hotAccess(key: number, write: boolean, value: bigint, cpu: number, ipi?: { mpidr: readonly bigint[]; changed: (target: number) => void }): bigint | null {
    if (Atomics.load(this.ctl, ENABLED) !== 1 || cpu < 0 || cpu >= this.cpus) return null;
    const entry = ENTRY_OF.get(key);
    if (entry === undefined) return null;
    let result: bigint;
    switch (M1_SYSREG_ENTRIES[entry]!.kind) {
      case 'store':
        if (write) this.setValue(entry, cpu, value);
        result = write ? 0n : this.value(entry, cpu);
        break;
      case 'zero':
        result = 0n;
        break;
      case 'ipi-cr':
        if (write) this.setValue(entry, cpu, value & 0xffffn);
        result = write ? 0n : this.value(entry, cpu);
        break;
      case 'ipi-sr':
        if (write && value & IPI_SR_PENDING && this.ipiPending(cpu)) {
          // Clearing a pending IPI lowers the FIQ line.
          if (!ipi || !this.ipiHot) return null;
          this.setIpiPending(cpu, false);
          ipi.changed(cpu);
        }
        result = write ? 0n : this.ipiPending(cpu) ? IPI_SR_PENDING : 0n;
        break;
      case 'ipi-local':
      case 'ipi-global': {
        if (write) {
          // Raises (or retracts) another vCPU's FIQ.
          if (!ipi || !this.ipiHot) return null;
          const req = ipiRequest(M1_SYSREG_ENTRIES[entry]!.kind as 'ipi-local' | 'ipi-global', value, cpu, ipi.mpidr);
          if (req) {
            this.setIpiPending(req.target, req.pending);
            ipi.changed(req.target);
          }
        }
        result = 0n;
        break;
      }
      case 'counter':
        return null; // the machine's counter function lives on the main thread
    }
    Atomics.add(this.ctl, HOT_ACCESSES, 1);
    return result;
  }
}
