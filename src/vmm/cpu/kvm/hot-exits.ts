import { UartShared } from '../../devices/uart-shared.js';
import { sysregKey } from '../../sysregs/encoding.js';
import { M1SysregShared } from '../../sysregs/m1-shared.js';
import type { SharedDeviceState } from '../backend.js';
import { EXIT, RUN } from './uapi.js';

// The exits a vCPU thread serves itself, from the devices' shared state, without waking the main
// thread: MMIO to the registers the UART's map marks hot (the polled console path) and the M1
// system registers whose effect stays in their storage (PMCR0, IPI_SR reads...). Everything else,
// and anything these state objects decline, goes to the main thread as before. Pure over the
// kvm_run page, so the tests drive it with a page they build.

export class HotExits {
  private readonly uarts: Array<{ base: bigint; end: bigint; state: UartShared }>;
  private readonly sysregs: M1SysregShared | null;
  private readonly ipi: { mpidr: readonly bigint[]; changed: (target: number) => void } | undefined;

  /** `ipiChanged(target)` brings a vCPU's FIQ line up to date after its FastIPI-pending word
   *  changed; without it FastIPI requests and clears go to the main thread. */
  constructor(state: SharedDeviceState, private readonly cpu: number, ipiChanged?: (target: number) => void) {
    this.uarts = state.uarts.map((u) => ({ base: u.base, end: u.base + u.size, state: new UartShared(u.buffer) }));
    this.sysregs = state.sysregs ? new M1SysregShared(state.sysregs.cpus, state.sysregs.buffer) : null;
    this.ipi = state.sysregs && ipiChanged ? { mpidr: state.sysregs.mpidr, changed: ipiChanged } : undefined;
  }

  /** Serve the exit in `run` (a kvm_run page after KVM_RUN returned 0); the kind served, or null
   *  to forward it. Reads leave their value where the next KVM_RUN picks it up. */
  serve(run: DataView): 'mmio' | 'sysreg' | null {
    const reason = run.getUint32(RUN.exit_reason, true);
    if (reason === EXIT.KVM_EXIT_MMIO) return this.mmio(run) ? 'mmio' : null;
    if (reason === EXIT.KVM_EXIT_ARM_IMPDEF_SYSREG) return this.sysreg(run) ? 'sysreg' : null;
    return null;
  }

  private mmio(run: DataView): boolean {
    // The hot registers are 32-bit; other widths keep the bus's rules.
    if (run.getUint32(RUN.mmio_len, true) !== 4) return false;
    const addr = run.getBigUint64(RUN.mmio_phys_addr, true);
    const u = this.uarts.find((x) => addr >= x.base && addr < x.end);
    if (!u) return false;
    const offset = Number(addr - u.base);
    if (run.getUint8(RUN.mmio_is_write) !== 0) return u.state.hotWrite(offset, run.getUint32(RUN.mmio_data, true));
    const v = u.state.hotRead(offset);
    if (v === null) return false;
    run.setBigUint64(RUN.mmio_data, BigInt(v), true);
    return true;
  }

  private sysreg(run: DataView): boolean {
    if (!this.sysregs) return false;
    const key = sysregKey({
      op0: run.getUint8(RUN.impdef_op0), op1: run.getUint8(RUN.impdef_op1), crn: run.getUint8(RUN.impdef_crn),
      crm: run.getUint8(RUN.impdef_crm), op2: run.getUint8(RUN.impdef_op2),
    });
    const write = run.getUint8(RUN.impdef_is_write) !== 0;
    const v = this.sysregs.hotAccess(key, write, write ? run.getBigUint64(RUN.impdef_value, true) : 0n, this.cpu, this.ipi);
    if (v === null) return false;
    if (!write) run.setBigUint64(RUN.impdef_value, v, true);
    return true;
  }
}
