import { setFiqPart } from './fiq-line.js';
import type { HotExits } from './hot-exits.js';
import { EINTR } from '../../../host/libc.js';
import { CTL_FIQ_TIMER, CTL_HOT_MMIO, CTL_HOT_SYSREG, CTL_HOT_TIMER, CTL_KICK } from './protocol.js';
import { KVM_ARM_DEV_EL1_PTIMER, KVM_ARM_DEV_EL1_VTIMER, RUN } from './uapi.js';

// One turn of a vCPU thread, separated from the ioctl so that it can be driven by a scripted
// KVM in the tests: run the vCPU, give the timers' level to the FIQ line after every return, and
// serve what needs no main thread, until an exit must be handed over (or the main thread kicked).

export interface WorkerTurn {
  ctl: Int32Array;
  /** The vCPU's kvm_run page. */
  run: DataView;
  /** null: hand every exit over (M1PREP_KVM_HOT_EXITS=0). */
  hot: HotExits | null;
  /** ioctl(KVM_RUN): the return value and errno. */
  kvmRun: () => { rc: number; errno: number };
  /** Bring this vCPU's FIQ line up to date (fiq-line.ts). */
  syncFiq: () => void;
}

export function runUntilHandover(t: WorkerTurn): { rc: number; errno: number } {
  const { ctl, run, hot } = t;
  for (;;) {
    const r = t.kvmRun();
    const levels = Number(run.getBigUint64(RUN.device_irq_level, true));
    const timer = (levels & (KVM_ARM_DEV_EL1_VTIMER | KVM_ARM_DEV_EL1_PTIMER)) !== 0;
    if (setFiqPart(ctl, CTL_FIQ_TIMER, timer)) t.syncFiq();
    if (!hot || Atomics.load(ctl, CTL_KICK) !== 0) return r;
    if (r.rc < 0) {
      // Not kicked, so this EINTR reported the timer level just handled (or a stray signal).
      if (r.errno !== EINTR) return r;
      ctl[CTL_HOT_TIMER]!++;
      continue;
    }
    const served = hot.serve(run);
    if (served === 'mmio') ctl[CTL_HOT_MMIO]!++;
    else if (served === 'sysreg') ctl[CTL_HOT_SYSREG]!++;
    else return r;
  }
}
