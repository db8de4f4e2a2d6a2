import { lock, unlock } from '../../hot/spinlock.js';
import { CTL_FIQ_EXTERNAL, CTL_FIQ_LINE, CTL_FIQ_LOCK, CTL_FIQ_TIMER } from './protocol.js';

// A vCPU's FIQ input is the OR of the machine's FIQ sources, which the main thread knows, and the
// guest timers, which the vCPU thread sees in kvm_run after every KVM_RUN. Either thread records
// its part and then brings the line up to date under the lock, so the last KVM_IRQ_LINE always
// carries the current OR and neither thread waits for the other to do it.

export function syncFiqLine(ctl: Int32Array, setLine: (level: boolean) => void): void {
  lock(ctl, CTL_FIQ_LOCK);
  try {
    const want = Atomics.load(ctl, CTL_FIQ_EXTERNAL) | Atomics.load(ctl, CTL_FIQ_TIMER) ? 1 : 0;
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
