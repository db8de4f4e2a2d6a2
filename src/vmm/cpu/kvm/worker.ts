import { workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { HotExits } from './hot-exits.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, libc, mapMemory } from '../../../host/libc.js';
import { CTL_ERRNO, CTL_RC, CTL_READY, CTL_SLOT, CTL_STATE, CTL_TID_HI, CTL_TID_LO, CTL_WORDS, MAX_VCPUS, STATE_EXITED, STATE_QUIT, STATE_RUN } from './protocol.js';
import { syncFiqLine } from './fiq-line.js';
import { M1SysregShared } from '../../sysregs/m1-shared.js';
import type { VcpuWorkerData } from './protocol.js';
import { IOCTL, KVM_ARM_IRQ_CPU_FIQ, SIZEOF, irqLineNumber } from './uapi.js';
import { runUntilHandover } from './worker-loop.js';

// The vCPU thread. It calls KVM_RUN synchronously (a koffi async call would run the ioctl on
// another OS thread for every call) and serves the exits that need no main thread itself:
//   - the guest timers' level (run->s.regs.device_irq_level) goes straight to the FIQ line, and
//     the EINTR KVM returns to report a change of it is answered by running on;
//   - MMIO and IMPDEF system-register exits the devices' shared state can answer (hot-exits.ts).
// Every other exit, and any exit while the main thread has kicked the vCPU, is handed over:
// the main thread stores RUN and notifies; this thread runs, stores the result and EXITED,
// notifies, and rings the doorbell that the main thread's run loop waits on.

function main(): void {
  const data = workerData as VcpuWorkerData;
  const all = new Int32Array(data.ctl);
  const ctls = Array.from({ length: MAX_VCPUS }, (_, i) => all.subarray(i * CTL_WORDS, (i + 1) * CTL_WORDS));
  const ctl = ctls[data.cpu]!;
  const bell = new Int32Array(data.bell);
  const c = libc();
  // This thread's own view of the vCPU's kvm_run page (a second mapping of the same page).
  const runPtr = mapMemory(data.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, data.fd);
  if (!runPtr) throw new Error(`vcpu ${data.cpu}: mmap of the kvm_run page failed (errno ${koffi.errno()})`);
  const run = new DataView(koffi.view(runPtr, data.runSize));
  // Any vCPU's FIQ line, from any thread: this one's (timers, IPI_SR clears) and a target's (IPI_RR).
  const ipiWords = data.sysregs ? new M1SysregShared(data.sysregs.cpus, data.sysregs.buffer).ipi : null;
  const ipiOf = ctls.map((_, i) => (ipiWords ? { words: ipiWords, index: i } : null));
  const irqBuf = Buffer.alloc(SIZEOF.kvm_irq_level);
  const fiqSetters = ctls.map((target, i) => (level: boolean): void => {
    irqBuf.writeUInt32LE(irqLineNumber(target[CTL_SLOT]!, KVM_ARM_IRQ_CPU_FIQ), 0);
    irqBuf.writeUInt32LE(level ? 1 : 0, 4);
    if ((c.ioctlPtr(data.vmFd, IOCTL.KVM_IRQ_LINE, irqBuf) as number) < 0) throw new Error(`vcpu ${data.cpu}: KVM_IRQ_LINE (FIQ of vcpu ${i}) failed (errno ${koffi.errno()})`);
  });
  const syncFiqOf = (cpu: number): void => syncFiqLine(ctls[cpu]!, fiqSetters[cpu]!, ipiOf[cpu]!);
  const hot = data.hot ? new HotExits(data.hot, data.cpu, syncFiqOf) : null;

  const tid = BigInt(c.pthreadSelf() as number | bigint);
  ctl[CTL_TID_LO] = Number(tid & 0xffffffffn) | 0;
  ctl[CTL_TID_HI] = Number(tid >> 32n) | 0;
  Atomics.store(ctl, CTL_READY, 1);
  Atomics.notify(ctl, CTL_READY);
  const turn = {
    ctl, run, hot, syncFiq: () => syncFiqOf(data.cpu),
    kvmRun: () => {
      const r = c.ioctlInt(data.fd, IOCTL.KVM_RUN, 0) as number;
      return { rc: r, errno: r < 0 ? koffi.errno() : 0 };
    },
  };
  for (;;) {
    let s = Atomics.load(ctl, CTL_STATE);
    while (s !== STATE_RUN && s !== STATE_QUIT) {
      Atomics.wait(ctl, CTL_STATE, s);
      s = Atomics.load(ctl, CTL_STATE);
    }
    if (s === STATE_QUIT) break;
    const { rc, errno } = runUntilHandover(turn);
    ctl[CTL_RC] = rc;
    ctl[CTL_ERRNO] = errno;
    // A QUIT stored while KVM_RUN ran wins over EXITED.
    Atomics.compareExchange(ctl, CTL_STATE, STATE_RUN, STATE_EXITED);
    Atomics.notify(ctl, CTL_STATE);
    Atomics.add(bell, 0, 1);
    Atomics.notify(bell, 0);
  }
  c.munmap(runPtr, data.runSize);
  Atomics.store(ctl, CTL_READY, 2);
  Atomics.notify(ctl, CTL_READY);
}

main();
