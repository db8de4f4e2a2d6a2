import type { SharedDeviceState } from '../backend.js';

// The control words shared by the main thread and the vCPU workers (CTL_WORDS Int32 words per
// vCPU, all vCPUs in one SharedArrayBuffer), and the doorbell all workers ring (one Int32 counter).

export const CTL_STATE = 0;
export const CTL_RC = 1;
export const CTL_ERRNO = 2;
/** pthread_t of this thread (low and high 32 bits), for the kick signal. */
export const CTL_TID_LO = 3;
export const CTL_TID_HI = 4;
/** 1 once the worker stored its pthread_t, 2 once it has let go of kvm_run on QUIT. */
export const CTL_READY = 5;
/** 1 while the main thread wants the vCPU back (stop, register access): the worker forwards the
 *  next exit whatever it is, instead of serving it itself. */
export const CTL_KICK = 6;
/** The FIQ line (fiq-line.ts): a lock, the machine's FIQ sources other than FastIPI (main
 *  thread), the guest timers (from run->s.regs.device_irq_level; worker), and the level last
 *  given to KVM_IRQ_LINE. The third part, FastIPI, is the vCPU's word in M1SysregShared.ipi. */
export const CTL_FIQ_LOCK = 7;
export const CTL_FIQ_EXTERNAL = 8;
export const CTL_FIQ_TIMER = 9;
export const CTL_FIQ_LINE = 10;
/** Exits the worker served itself, by kind (written by the worker only). */
export const CTL_HOT_MMIO = 11;
export const CTL_HOT_SYSREG = 12;
export const CTL_HOT_TIMER = 13;
/** KVM_IRQ_LINE's vCPU number for this vCPU (creation order), for threads raising its FIQ. */
export const CTL_SLOT = 14;
export const CTL_WORDS = 16;
/** The control words of every vCPU live in one buffer (vCPU i at i * CTL_WORDS), so that a vCPU
 *  thread serving an IPI_RR can bring another vCPU's FIQ line up to date. */
export const MAX_VCPUS = 16;

/** The signal that kicks a vCPU thread out of KVM_RUN (not SIGUSR1: Node's inspector owns it). */
export const KICK_SIGNAL = 'SIGUSR2';
export const KICK_SIGNAL_NUMBER = 12;

export const STATE_IDLE = 0;
export const STATE_RUN = 1;
export const STATE_EXITED = 2;
export const STATE_QUIT = 3;

export interface VcpuWorkerData {
  fd: number;
  vmFd: number;
  /** The machine's CPU index (this vCPU's control words: ctl at cpu * CTL_WORDS). */
  cpu: number;
  runSize: number;
  /** Every vCPU's control words. */
  ctl: SharedArrayBuffer;
  bell: SharedArrayBuffer;
  /** Device state the worker may serve exits from; null forwards every exit. */
  hot: SharedDeviceState | null;
  /** The machine's system-register state (its FastIPI-pending words are part of every vCPU's FIQ). */
  sysregs: SharedDeviceState['sysregs'];
}
