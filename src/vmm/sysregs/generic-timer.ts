import type { IrqLine } from '../device.js';
import { sysregKey, type SysregEncoding } from './encoding.js';

// The EL1 physical timer of one vCPU (CNTP_CTL/CVAL/TVAL_EL0), emulated against the running system
// counter: Unicorn stores these registers but never computes ISTATUS nor raises an interrupt, so the
// software backend traps them (CNTHCTL_EL2.EL1PCEN = 0) and the run loop routes them here. The
// output is level-triggered: the FIQ is high while enabled, unmasked and expired.

export const CNTP_TVAL_EL0: SysregEncoding = { op0: 3, op1: 3, crn: 14, crm: 2, op2: 0 };
export const CNTP_CTL_EL0: SysregEncoding = { op0: 3, op1: 3, crn: 14, crm: 2, op2: 1 };
export const CNTP_CVAL_EL0: SysregEncoding = { op0: 3, op1: 3, crn: 14, crm: 2, op2: 2 };
export const CNTP_TVAL_KEY = sysregKey(CNTP_TVAL_EL0), CNTP_CTL_KEY = sysregKey(CNTP_CTL_EL0), CNTP_CVAL_KEY = sysregKey(CNTP_CVAL_EL0);
const TVAL = CNTP_TVAL_KEY, CTL = CNTP_CTL_KEY, CVAL = CNTP_CVAL_KEY;

const ENABLE = 1n, IMASK = 2n, ISTATUS = 4n;

export function physTimerName(e: SysregEncoding | number): string {
  const k = typeof e === 'number' ? e : sysregKey(e);
  return k === CTL ? 'CNTP_CTL_EL0' : k === CVAL ? 'CNTP_CVAL_EL0' : 'CNTP_TVAL_EL0';
}

export function isPhysTimerReg(e: SysregEncoding | number): boolean {
  const k = typeof e === 'number' ? e : sysregKey(e);
  return k === TVAL || k === CTL || k === CVAL;
}

export class GenericTimer {
  private ctl = 0n;
  private cval = 0n;
  private level = false;

  constructor(private readonly counter: () => bigint, private readonly line: IrqLine) {}

  access(e: SysregEncoding, write: boolean, value: bigint): bigint {
    return this.accessKey(sysregKey(e), write, value);
  }

  accessKey(k: number, write: boolean, value: bigint): bigint {
    const now = this.counter();
    let result = 0n;
    if (k === CTL) {
      if (write) this.ctl = value & (ENABLE | IMASK);
      else result = this.ctl | (this.expired(now) ? ISTATUS : 0n);
    } else if (k === CVAL) {
      if (write) this.cval = BigInt.asUintN(64, value);
      else result = this.cval;
    } else if (k === TVAL) {
      // TVAL is a signed 32-bit view of CVAL - counter.
      if (write) this.cval = BigInt.asUintN(64, now + BigInt.asIntN(32, value));
      else result = BigInt.asUintN(32, this.cval - now);
    }
    this.update(now);
    return result;
  }

  private expired(now: bigint): boolean {
    return (this.ctl & ENABLE) !== 0n && now >= this.cval;
  }

  /** Re-evaluate the output line against the counter (the run loop calls this between slices). */
  update(now = this.counter()): boolean {
    const level = this.expired(now) && (this.ctl & IMASK) === 0n;
    if (level !== this.level) {
      this.level = level;
      this.line.set(level);
    }
    return level;
  }

  /** Counter value at which the output will rise, or null when it cannot (disabled, masked, already high). */
  deadline(): bigint | null {
    if ((this.ctl & ENABLE) === 0n || (this.ctl & IMASK) !== 0n || this.level) return null;
    return this.cval;
  }

  reset(): void {
    this.ctl = 0n;
    this.cval = 0n;
    if (this.level) this.line.set(false);
    this.level = false;
  }
}

/** The host-backed system counter. Unicorn's CNTPCT is CLOCK_MONOTONIC in ns / 16 (62.5 MHz), the
 *  same clock as process.hrtime, so both views agree (test/vmm/unicorn-backend.test.ts checks it). */
export const COUNTER_HZ = 62_500_000n;
export function hostCounter(): bigint {
  return process.hrtime.bigint() / 16n;
}
