import { lock, unlock } from '../../hot/spinlock.js';
import { CTL_FIQ_EXTERNAL, CTL_FIQ_LINE, CTL_FIQ_LOCK, CTL_FIQ_TIMER } from './protocol.js';

// A vCPU's FIQ input is the OR of three parts: the machine's other FIQ sources, which the main
// thread knows (CTL_FIQ_EXTERNAL); the guest timers, which the vCPU's thread sees in kvm_run after
// every KVM_RUN (CTL_FIQ_TIMER); and the vCPU's FastIPI-pending word in the system-register state,
// which the main thread or any vCPU thread may change (an IPI_RR from another vCPU, an IPI_SR
// clear). Whoever changes a part then brings the line up to date under the vCPU's lock, so the
// last KVM_IRQ_LINE always carries the current OR and no thread waits for another to do it.

/** Where a vCPU's FastIPI-pending word lives (M1SysregShared.ipi), if the machine has one. */
export interface IpiWord {
  words: Int32Array;
  index: number;
}

export function syncFiqLine(ctl: Int32Array, setLine: (level: boolean) => void, ipi: IpiWord | null): void {
  lock(ctl, CTL_FIQ_LOCK);
  try {
    const pending = ipi ? Atomics.load(ipi.words, ipi.index) : 0;
    const want = Atomics.load(ctl, CTL_FIQ_EXTERNAL) | Atomics.load(ctl, CTL_FIQ_TIMER) | pending ? 1 : 0;
    if (ctl[CTL_FIQ_LINE] !== want) {
      setLine(want === 1);
      ctl[CTL_FIQ_LINE] = want;
    }
  } finally {
    unlock(ctl, CTL_FIQ_LOCK);
  }
}

/** Record one part of the FIQ input (`word`: CTL_FIQ_EXTERNAL or CTL_FIQ_TIMER); true if it changed. */
export function setFiqPart(ctl: Int32Array, word: number, level: boolean): boolean {
  return Atomics.exchange(ctl, word, level ? 1 : 0) !== (level ? 1 : 0);
}
