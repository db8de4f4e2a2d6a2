// The control words shared by the main thread and a vCPU worker (one Int32Array over a
// SharedArrayBuffer per vCPU), and the doorbell all workers ring (one Int32 counter).

export const CTL_STATE = 0;
export const CTL_RC = 1;
export const CTL_ERRNO = 2;
/** pthread_t of this thread (low and high 32 bits), for the kick signal. */
export const CTL_TID_LO = 3;
export const CTL_TID_HI = 4;
/** 1 once the worker stored its pthread_t. */
export const CTL_READY = 5;
export const CTL_WORDS = 8;

export const STATE_IDLE = 0;
export const STATE_RUN = 1;
export const STATE_EXITED = 2;
export const STATE_QUIT = 3;

export interface VcpuWorkerData {
  fd: number;
  ctl: SharedArrayBuffer;
  bell: SharedArrayBuffer;
}
