import { workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { libc } from './libc.js';
import { IOCTL } from './uapi.js';
import { CTL_ERRNO, CTL_RC, CTL_STATE, CTL_TID_HI, CTL_TID_LO, STATE_EXITED, STATE_QUIT, STATE_RUN, CTL_READY } from './protocol.js';
import type { VcpuWorkerData } from './protocol.js';

// The vCPU thread: it only pumps KVM_RUN, synchronously (a koffi async call would run the ioctl on
// another OS thread for every call). Everything else — exits,
// devices, registers — is done by the main thread while this one waits. Protocol over the shared
// control words (see vcpu.ts): the main thread stores RUN and notifies; this thread runs, stores
// the result and EXITED, notifies, and rings the doorbell that the main thread's run loop waits on.

function main(): void {
  const { fd, ctl: ctlBuf, bell: bellBuf } = workerData as VcpuWorkerData;
  const ctl = new Int32Array(ctlBuf);
  const bell = new Int32Array(bellBuf);
  const c = libc();
  const tid = BigInt(c.pthreadSelf() as number | bigint);
  ctl[CTL_TID_LO] = Number(tid & 0xffffffffn) | 0;
  ctl[CTL_TID_HI] = Number(tid >> 32n) | 0;
  Atomics.store(ctl, CTL_READY, 1);
  Atomics.notify(ctl, CTL_READY);
  for (;;) {
    let s = Atomics.load(ctl, CTL_STATE);
    while (s !== STATE_RUN && s !== STATE_QUIT) {
      Atomics.wait(ctl, CTL_STATE, s);
      s = Atomics.load(ctl, CTL_STATE);
    }
    if (s === STATE_QUIT) return;
    const rc = c.ioctlInt(fd, IOCTL.KVM_RUN, 0) as number;
    ctl[CTL_RC] = rc;
    ctl[CTL_ERRNO] = rc < 0 ? koffi.errno() : 0;
    // A QUIT stored while KVM_RUN ran wins over EXITED.
    Atomics.compareExchange(ctl, CTL_STATE, STATE_RUN, STATE_EXITED);
    Atomics.notify(ctl, CTL_STATE);
    Atomics.add(bell, 0, 1);
    Atomics.notify(bell, 0);
  }
}

main();
