import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import type { ExitHandler, Vcpu, VcpuExit, VcpuRegs } from '../backend.js';
import { walk, type AccessKind, type Regime, type WalkResult } from '../pagewalk.js';
import { HostError, UsageError } from '../../../errors.js';
import type { KvmBackend } from './backend.js';
import { EINTR, EAGAIN, lastError, libc } from '../../../host/libc.js';
import { setFiqPart, syncFiqLine, type IpiWord } from './fiq-line.js';
import { M1SysregShared } from '../../sysregs/m1-shared.js';
import { decodeNisv, extendLoad, type NisvPlan } from './nisv.js';
import {
  CTL_ERRNO, CTL_FIQ_EXTERNAL, CTL_HOT_MMIO, CTL_HOT_SYSREG, CTL_HOT_TIMER, CTL_KICK, CTL_RC, CTL_READY, CTL_SLOT, CTL_STATE,
  CTL_TID_HI, CTL_TID_LO, CTL_WORDS, KICK_SIGNAL_NUMBER, STATE_EXITED, STATE_IDLE, STATE_QUIT, STATE_RUN, type VcpuWorkerData,
} from './protocol.js';
import {
  EXIT, GUEST_DEBUG, IOCTL, KVM_ARM_IRQ_CPU_FIQ, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW, KVM_ARM_IRQ_CPU_IRQ, KVM_ARM_VCPU_POWER_OFF, KVM_MP_STATE_RUNNABLE,
  KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, REG_ID, RUN, SIZEOF, sysregId,
} from './uapi.js';

// One vCPU on KVM. Its worker thread (worker.ts) runs KVM_RUN and serves the hot exits itself
// (the polled UART, simple IMPDEF registers, timer-level changes); this object, on the main
// thread, decodes each exit the worker hands over from the shared kvm_run page and serves it —
// MMIO and IMPDEF system registers through the run loop's exit handler (the same bus and M1
// system-register table as the software backend), NISV loads/stores by emulation — then lets the
// worker run again. The vCPU's IRQ line is the AIC's; its FIQ line is the OR of the machine's
// other FIQ sources, the guest timers (KVM reports their levels in run->s.regs.device_irq_level,
// KVM_CAP_ARM_USER_IRQ) and the vCPU's FastIPI-pending word; every thread keeps it current
// (fiq-line.ts).

const PSTATE_EL1H_MASKED = 0x3c5n;
const SCTLR_EL1 = sysregId(3, 0, 1, 0, 0);
const TCR_EL1 = sysregId(3, 0, 2, 0, 2);
const TTBR0_EL1 = sysregId(3, 0, 2, 0, 0);
const TTBR1_EL1 = sysregId(3, 0, 2, 0, 1);
const MPIDR_EL1 = sysregId(3, 0, 0, 0, 5);
const MIDR_EL1 = sysregId(3, 0, 0, 0, 0);
/** How long one run() waits for this vCPU (or any other) to exit before yielding to the run loop. */
const SLICE_MS = 5;
/** DBGBCR<n>_EL1 for an address-match breakpoint on execution at EL1 and EL0 (Arm ARM D19.3.2):
 *  E (bit 0), PMC = 0b11 (bits 2:1), BAS = 0b1111 (bits 8:5), unlinked, no EL2/secure match. */
const DBGBCR_EXEC_EL1_EL0 = 0x1e7n;
/** A single step that has not completed by then (a WFI with nothing pending) stops where it is. */
const STEP_TIMEOUT_MS = 2000;

export class KvmVcpu implements Vcpu {
  readonly fd: number;
  private readonly runPtr: unknown;
  private readonly run8: Uint8Array;
  private readonly runView: DataView;
  private readonly ctl: Int32Array;
  /** This vCPU's FastIPI-pending word, part of its FIQ input. */
  private readonly ipi: IpiWord | null;
  private readonly worker: Worker;
  private readonly oneReg = Buffer.alloc(SIZEOF.kvm_one_reg);
  private readonly regBuf = Buffer.alloc(16);
  private handler: ExitHandler | null = null;
  /** NISV emulation collects MMIO read results here instead of in the kvm_run page. */
  private capture = false;
  private mmioValue = 0n;
  private stopRequested = false;
  private irqLevel = false;
  running = false;
  /** Hardware breakpoints (virtual addresses, gdb stub) and what KVM_SET_GUEST_DEBUG last got. */
  private breakpoints: bigint[] = [];
  private debugApplied = 'off';
  /** The last exit was a breakpoint or step: resuming at a breakpoint must execute it first. */
  private stoppedAtDebug = false;
  /** Exits seen, by kind (boot summary, bench). */
  readonly exits = new Map<string, number>();
  closed = false;

  /** Creation order: the vCPU number KVM_IRQ_LINE addresses (kvm_get_vcpu()). */
  private readonly slot: number;

  constructor(private readonly backend: KvmBackend, readonly index: number, mpidr: bigint, midr: bigint | null) {
    const c = libc();
    this.slot = backend.vcpus.length;
    this.ctl = new Int32Array(backend.ctl.buffer, index * CTL_WORDS * 4, CTL_WORDS);
    this.ctl.fill(0);
    this.ctl[CTL_SLOT] = this.slot;
    const sys = backend.deviceState?.sysregs;
    this.ipi = sys ? { words: new M1SysregShared(sys.cpus, sys.buffer).ipi, index } : null;
    const fd = c.ioctlInt(backend.vmFd, IOCTL.KVM_CREATE_VCPU, index) as number;
    if (fd < 0) throw backend.error(`KVM_CREATE_VCPU ${index}`);
    this.fd = fd;
    this.runPtr = backend.mapRunPage(fd);
    this.run8 = new Uint8Array(koffi.view(this.runPtr, backend.runSize));
    this.runView = new DataView(this.run8.buffer);
    // KVM_ARM_VCPU_INIT with the preferred (generic) target; secondaries start powered off and are
    // released by the PMGR model or the spin table (start()).
    const init = Buffer.from(backend.preferredTarget);
    if (index > 0) init.writeUInt32LE(1 << KVM_ARM_VCPU_POWER_OFF, 4);
    if ((c.ioctlPtr(fd, IOCTL.KVM_ARM_VCPU_INIT, init) as number) < 0) throw backend.error(`KVM_ARM_VCPU_INIT ${index}`);
    this.setOneReg(MPIDR_EL1, mpidr | (1n << 31n));
    if (midr !== null && backend.caps.writableImpIdRegs) this.setOneReg(MIDR_EL1, midr);
    const data: VcpuWorkerData = {
      fd, vmFd: backend.vmFd, cpu: index, runSize: backend.runSize,
      ctl: backend.ctl.buffer as SharedArrayBuffer, bell: backend.bell.buffer as SharedArrayBuffer, hot: backend.hotState,
      sysregs: backend.deviceState?.sysregs ?? null,
    };
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.worker.on('error', (e) => { this.backend.workerError = `vcpu ${index} worker: ${e.message}`; });
  }

  // ---- registers (only while the worker is outside KVM_RUN) --------------------------------------

  private oneRegIoctl(req: number, id: bigint, what: string): void {
    this.oneReg.writeBigUInt64LE(id, 0);
    this.oneReg.writeBigUInt64LE(koffi.address(this.regBuf), 8);
    if ((libc().ioctlPtr(this.fd, req, this.oneReg) as number) < 0) throw this.backend.error(`${what} 0x${id.toString(16)} on vcpu ${this.index}`);
  }

  getOneReg(id: bigint): bigint {
    this.oneRegIoctl(IOCTL.KVM_GET_ONE_REG, id, 'KVM_GET_ONE_REG');
    return this.regBuf.readBigUInt64LE(0);
  }

  setOneReg(id: bigint, v: bigint): void {
    this.regBuf.writeBigUInt64LE(BigInt.asUintN(64, v), 0);
    this.oneRegIoctl(IOCTL.KVM_SET_ONE_REG, id, 'KVM_SET_ONE_REG');
  }

  private getV(n: number): [bigint, bigint] {
    this.oneRegIoctl(IOCTL.KVM_GET_ONE_REG, REG_ID.v(n), 'KVM_GET_ONE_REG');
    return [this.regBuf.readBigUInt64LE(0), this.regBuf.readBigUInt64LE(8)];
  }

  private setV(n: number, lo: bigint, hi: bigint): void {
    this.regBuf.writeBigUInt64LE(BigInt.asUintN(64, lo), 0);
    this.regBuf.writeBigUInt64LE(BigInt.asUintN(64, hi), 8);
    this.oneRegIoctl(IOCTL.KVM_SET_ONE_REG, REG_ID.v(n), 'KVM_SET_ONE_REG');
  }

  /** x0..x30; 31 is SP when `sp`, else XZR. */
  private x(n: number, sp: boolean): bigint {
    if (n === 31) return sp ? this.getOneReg(REG_ID.sp) : 0n;
    return this.getOneReg(REG_ID.x(n));
  }

  private setX(n: number, v: bigint, sp = false): void {
    if (n === 31) {
      if (sp) this.setOneReg(REG_ID.sp, v);
      return;
    }
    this.setOneReg(REG_ID.x(n), v);
  }

  getRegs(): VcpuRegs {
    this.quiesce();
    const x: bigint[] = [];
    for (let i = 0; i < 31; i++) x.push(this.getOneReg(REG_ID.x(i)));
    return { x, sp: this.getOneReg(REG_ID.sp), pc: this.getOneReg(REG_ID.pc), pstate: this.getOneReg(REG_ID.pstate) };
  }

  setRegs(r: Partial<VcpuRegs>): void {
    this.quiesce();
    r.x?.forEach((v, i) => this.setOneReg(REG_ID.x(i), v));
    if (r.sp !== undefined) this.setOneReg(REG_ID.sp, r.sp);
    if (r.pstate !== undefined) this.setOneReg(REG_ID.pstate, r.pstate);
    if (r.pc !== undefined) this.setOneReg(REG_ID.pc, r.pc);
  }

  readSysreg(op0: number, op1: number, crn: number, crm: number, op2: number): bigint | null {
    this.quiesce();
    try {
      return this.getOneReg(sysregId(op0, op1, crn, crm, op2));
    } catch {
      return null;
    }
  }

  start(pc: bigint, arg: bigint): void {
    this.quiesce();
    this.setOneReg(REG_ID.pstate, PSTATE_EL1H_MASKED);
    this.setOneReg(REG_ID.x(0), arg);
    this.setOneReg(REG_ID.pc, pc);
    const mp = Buffer.alloc(SIZEOF.kvm_mp_state);
    mp.writeUInt32LE(KVM_MP_STATE_RUNNABLE, 0);
    if ((libc().ioctlPtr(this.fd, IOCTL.KVM_SET_MP_STATE, mp) as number) < 0) throw this.backend.error(`KVM_SET_MP_STATE on vcpu ${this.index}`);
    this.running = true;
  }

  // ---- interrupts --------------------------------------------------------------------------------

  setIrq(level: boolean): void {
    if (level === this.irqLevel) return;
    this.irqLevel = level;
    this.backend.irqLine(this.slot, KVM_ARM_IRQ_CPU_IRQ, level);
  }

  setFiq(level: boolean): void {
    if (setFiqPart(this.ctl, CTL_FIQ_EXTERNAL, level)) this.syncFiq();
  }

  /** The FastIPI-pending word of this vCPU changed (the machine's FastIPI, on the main thread). */
  ipiChanged(): void {
    this.syncFiq();
  }

  private syncFiq(): void {
    syncFiqLine(this.ctl, (l) => this.backend.irqLine(this.slot, KVM_ARM_IRQ_CPU_FIQ, l), this.ipi);
  }

  // ---- running -----------------------------------------------------------------------------------

  setExitHandler(handler: ExitHandler): void {
    this.handler = handler;
  }

  private state(): number {
    return Atomics.load(this.ctl, CTL_STATE);
  }

  private resume(): void {
    Atomics.store(this.ctl, CTL_STATE, STATE_RUN);
    Atomics.notify(this.ctl, CTL_STATE);
  }

  run(): VcpuExit {
    if (this.backend.workerError) return { kind: 'fatal', reason: this.backend.workerError };
    // Serve this vCPU's exits for at most one slice, then let the run loop visit the others, poll
    // the machine and yield to the event loop; the guest keeps running in the kernel meanwhile.
    const deadline = performance.now() + SLICE_MS;
    for (;;) {
      const s = this.state();
      if (s === STATE_IDLE) {
        if (this.stopRequested || !this.running) {
          this.stopRequested = false;
          return { kind: 'stopped' };
        }
        if (this.stoppedAtDebug) {
          this.stoppedAtDebug = false;
          // A hardware breakpoint fires before its instruction runs: step over it, then run.
          if (this.breakpoints.includes(this.getOneReg(REG_ID.pc))) {
            const e = this.step();
            if (e.kind !== 'debug') return e;
            this.stoppedAtDebug = false;
          }
        }
        this.applyDebug(false);
        this.resume();
        continue;
      }
      if (s === STATE_EXITED) {
        Atomics.store(this.ctl, CTL_STATE, STATE_IDLE);
        const exit = this.serveExit();
        if (exit) return exit;
        continue;
      }
      if (s !== STATE_RUN) return { kind: 'fatal', reason: `vcpu ${this.index}: worker gone` };
      const left = deadline - performance.now();
      if (left <= 0) return { kind: 'yield' };
      // Wait for an exit of this vCPU or of any other (the doorbell).
      const bell = Atomics.load(this.backend.bell, 0);
      if (this.state() !== STATE_RUN) continue;
      Atomics.wait(this.backend.bell, 0, bell, left);
      if (this.state() === STATE_EXITED) continue;
      if (Atomics.load(this.backend.bell, 0) !== bell) return { kind: 'yield' }; // another vCPU exited
    }
  }

  private count(kind: string): void {
    this.exits.set(kind, (this.exits.get(kind) ?? 0) + 1);
  }

  /** Serve the exit in the kvm_run page; returns an exit for the run loop, or null to run on. */
  private serveExit(): VcpuExit | null {
    const rc = this.ctl[CTL_RC]!;
    const errno = this.ctl[CTL_ERRNO]!;
    // The worker already gave the timer level to the FIQ line.
    Atomics.store(this.ctl, CTL_KICK, 0);
    this.run8[RUN.immediate_exit] = 0;
    if (rc < 0) {
      if (errno === EINTR || errno === EAGAIN) {
        this.count('intr');
        return null;
      }
      return { kind: 'fatal', reason: `vcpu ${this.index}: KVM_RUN failed with errno ${errno}` };
    }
    const reason = this.runView.getUint32(RUN.exit_reason, true);
    switch (reason) {
      case EXIT.KVM_EXIT_MMIO:
        this.count('mmio');
        return this.mmioExit();
      case EXIT.KVM_EXIT_ARM_IMPDEF_SYSREG:
        this.count('sysreg');
        return this.sysregExit();
      case EXIT.KVM_EXIT_ARM_NISV:
        this.count('nisv');
        return this.emulateNisv();
      case EXIT.KVM_EXIT_INTR:
        this.count('intr');
        return null;
      case EXIT.KVM_EXIT_DEBUG:
        this.stoppedAtDebug = true;
        return { kind: 'debug' };
      case EXIT.KVM_EXIT_SYSTEM_EVENT: {
        const type = this.runView.getUint32(RUN.system_event_type, true);
        const what = type === KVM_SYSTEM_EVENT_SHUTDOWN ? 'powered off' : type === KVM_SYSTEM_EVENT_RESET ? 'requested a reset' : `raised system event ${type}`;
        return { kind: 'fatal', reason: `vcpu ${this.index}: the guest ${what} (PSCI)` };
      }
      case EXIT.KVM_EXIT_FAIL_ENTRY:
        return { kind: 'fatal', reason: `vcpu ${this.index}: KVM could not enter the guest (hardware reason 0x${this.runView.getBigUint64(RUN.fail_entry_hardware_entry_failure_reason, true).toString(16)})` };
      case EXIT.KVM_EXIT_INTERNAL_ERROR:
        return { kind: 'fatal', reason: `vcpu ${this.index}: KVM internal error, suberror ${this.runView.getUint32(RUN.internal_suberror, true)}` };
      default:
        return { kind: 'fatal', reason: `vcpu ${this.index}: unexpected KVM exit reason ${reason}` };
    }
  }

  private mmioExit(): VcpuExit | null {
    const addr = this.runView.getBigUint64(RUN.mmio_phys_addr, true);
    const size = this.runView.getUint32(RUN.mmio_len, true) as 1 | 2 | 4 | 8;
    const write = this.run8[RUN.mmio_is_write] !== 0;
    const value = write ? this.readData(RUN.mmio_data, size) : 0n;
    const exit: VcpuExit = { kind: 'mmio', addr, size, write, value, reg: -1 };
    if (!this.handler) return exit;
    this.handler(this, exit);
    return null;
  }

  private sysregExit(): VcpuExit | null {
    const b = this.run8;
    const write = b[RUN.impdef_is_write] !== 0;
    const exit: VcpuExit = {
      kind: 'sysreg', op0: b[RUN.impdef_op0]!, op1: b[RUN.impdef_op1]!, crn: b[RUN.impdef_crn]!, crm: b[RUN.impdef_crm]!,
      op2: b[RUN.impdef_op2]!, write, value: write ? this.runView.getBigUint64(RUN.impdef_value, true) : 0n, reg: b[RUN.impdef_rt]!,
    };
    if (!this.handler) return exit;
    this.handler(this, exit);
    return null;
  }

  private readData(off: number, size: number): bigint {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.run8[off + i]!);
    return v;
  }

  completeMmioRead(value: bigint): void {
    if (this.capture) {
      this.mmioValue = value;
      return;
    }
    this.runView.setBigUint64(RUN.mmio_data, BigInt.asUintN(64, value), true);
  }

  completeSysregRead(value: bigint): void {
    this.runView.setBigUint64(RUN.impdef_value, BigInt.asUintN(64, value), true);
  }

  // ---- NISV: loads/stores to MMIO without a syndrome ---------------------------------------------

  private regime(): Regime {
    return { sctlr: this.getOneReg(SCTLR_EL1), tcr: this.getOneReg(TCR_EL1), ttbr0: this.getOneReg(TTBR0_EL1), ttbr1: this.getOneReg(TTBR1_EL1) };
  }

  private emulateNisv(): VcpuExit | null {
    const faultIpa = this.runView.getBigUint64(RUN.arm_nisv_fault_ipa, true);
    const pc = this.getOneReg(REG_ID.pc);
    const t = walk(pc, 'exec', 1, false, this.regime(), (pa) => this.backend.readPhys64(pa));
    const insn = t.ok ? this.backend.readPhys32(t.pa) : null;
    const where = `vcpu ${this.index}: MMIO access without syndrome at pc 0x${pc.toString(16)} (IPA 0x${faultIpa.toString(16)})`;
    if (insn === null) return { kind: 'fatal', reason: `${where}: the instruction is not in RAM` };
    const plan = decodeNisv(insn);
    if (!plan) return { kind: 'fatal', reason: `${where}: instruction 0x${insn.toString(16).padStart(8, '0')} cannot be emulated` };
    if (!this.handler) return { kind: 'fatal', reason: `${where}: no exit handler` };
    this.applyNisv(plan, faultIpa);
    this.setOneReg(REG_ID.pc, pc + 4n);
    return null;
  }

  /** Perform the plan's accesses at `ipa` (the lowest address) through the exit handler. */
  applyNisv(plan: NisvPlan, ipa: bigint): void {
    const base = this.x(plan.rn, true);
    for (const el of plan.elements) {
      const chunks = el.size === 16 ? [0, 8] : [0];
      const chunkSize = (el.size === 16 ? 8 : el.size) as 1 | 2 | 4 | 8;
      if (plan.write) {
        const [lo, hi] = el.file === 'v' ? this.getV(el.reg) : [this.x(el.reg, false), 0n];
        for (const c of chunks) {
          const word = c === 0 ? lo : hi;
          const value = chunkSize === 8 ? word : word & ((1n << BigInt(chunkSize * 8)) - 1n);
          this.handler!(this, { kind: 'mmio', addr: ipa + BigInt(el.offset + c), size: chunkSize, write: true, value, reg: -1 });
        }
      } else {
        const words: bigint[] = [];
        for (const c of chunks) {
          this.mmioValue = 0n;
          this.capture = true;
          this.handler!(this, { kind: 'mmio', addr: ipa + BigInt(el.offset + c), size: chunkSize, write: false, value: 0n, reg: -1 });
          this.capture = false;
          words.push(this.mmioValue);
        }
        if (el.file === 'v') this.setV(el.reg, words[0]!, words[1] ?? 0n);
        else this.setX(el.reg, extendLoad(words[0]!, el));
      }
    }
    if (plan.writeback !== null) this.setX(plan.rn, BigInt.asUintN(64, base + plan.writeback), true);
  }

  // ---- guest debug (the gdb stub) ----------------------------------------------------------------

  get maxBreakpoints(): number {
    return this.backend.caps.guestDebug ? this.backend.caps.hwBreakpoints : 0;
  }

  setBreakpoints(addrs: readonly bigint[]): void {
    if (addrs.length > this.maxBreakpoints) {
      throw new UsageError(`KVM offers ${this.maxBreakpoints} hardware breakpoints on this host; ${addrs.length} were asked for`);
    }
    this.breakpoints = [...addrs];
  }

  /** Give KVM the breakpoints (and single step) the next KVM_RUN needs; the worker must be out. */
  private applyDebug(step: boolean): void {
    const bps = step ? [] : this.breakpoints;
    const key = step || bps.length ? `${step ? 'step' : 'run'}:${bps.join(',')}` : 'off';
    if (key === this.debugApplied) return;
    if (!this.backend.caps.guestDebug) throw new HostError('KVM backend: this kernel lacks KVM_CAP_SET_GUEST_DEBUG (breakpoints and single step)');
    const b = Buffer.alloc(SIZEOF.kvm_guest_debug);
    const control = key === 'off' ? 0 : KVM_GUESTDBG_ENABLE | (step ? KVM_GUESTDBG_SINGLESTEP : 0) | (bps.length ? KVM_GUESTDBG_USE_HW : 0);
    b.writeUInt32LE(control, GUEST_DEBUG.control);
    bps.forEach((addr, i) => {
      b.writeBigUInt64LE(DBGBCR_EXEC_EL1_EL0, GUEST_DEBUG.dbg_bcr + 8 * i);
      b.writeBigUInt64LE(addr & ~3n, GUEST_DEBUG.dbg_bvr + 8 * i);
    });
    if ((libc().ioctlPtr(this.fd, IOCTL.KVM_SET_GUEST_DEBUG, b) as number) < 0) throw this.backend.error(`KVM_SET_GUEST_DEBUG on vcpu ${this.index}`);
    this.debugApplied = key;
  }

  /** Execute one instruction (KVM_GUESTDBG_SINGLESTEP), serving the exits on the way. */
  step(): VcpuExit {
    this.quiesce();
    if (this.state() === STATE_EXITED) {
      // An exit left pending (by quiesce or the last slice) comes first.
      Atomics.store(this.ctl, CTL_STATE, STATE_IDLE);
      const pending = this.serveExit();
      if (pending && pending.kind !== 'debug') return pending;
    }
    if (!this.running) return { kind: 'stopped' };
    this.applyDebug(true);
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    for (;;) {
      this.resume();
      while (this.state() === STATE_RUN) {
        const left = deadline - performance.now();
        if (left > 0) Atomics.wait(this.ctl, CTL_STATE, STATE_RUN, left);
        else this.quiesce();
      }
      if (this.state() !== STATE_EXITED) return { kind: 'fatal', reason: `vcpu ${this.index}: worker gone` };
      Atomics.store(this.ctl, CTL_STATE, STATE_IDLE);
      const exit = this.serveExit();
      if (exit) return exit;
      if (performance.now() >= deadline) {
        this.stoppedAtDebug = true;
        return { kind: 'debug' };
      }
    }
  }

  translate(va: bigint, kind: AccessKind, el: 0 | 1, pan: boolean): WalkResult {
    this.quiesce();
    return walk(va, kind, el, pan, this.regime(), (pa) => this.backend.readPhys64(pa));
  }

  // ---- stopping ----------------------------------------------------------------------------------

  /** Make KVM_RUN return now: immediate_exit for a vCPU about to enter, a signal for one inside. */
  kick(): void {
    Atomics.store(this.ctl, CTL_KICK, 1);
    this.run8[RUN.immediate_exit] = 1;
    if (Atomics.load(this.ctl, CTL_READY) === 0) Atomics.wait(this.ctl, CTL_READY, 0, 2000);
    if (Atomics.load(this.ctl, CTL_READY) !== 1) return; // not started, or gone
    const tid = (BigInt(this.ctl[CTL_TID_HI]! >>> 0) << 32n) | BigInt(this.ctl[CTL_TID_LO]! >>> 0);
    libc().pthreadKill(tid, KICK_SIGNAL_NUMBER);
  }

  /** Bring the worker out of KVM_RUN (its exit stays pending for the next run()). */
  private quiesce(): void {
    if (this.closed || this.state() !== STATE_RUN) return;
    for (let i = 0; i < 200 && this.state() === STATE_RUN; i++) {
      this.kick();
      Atomics.wait(this.ctl, CTL_STATE, STATE_RUN, 10);
    }
    if (this.state() === STATE_RUN) throw new Error(`vcpu ${this.index}: KVM_RUN does not return`);
  }

  stop(): void {
    this.stopRequested = true;
    if (this.state() === STATE_RUN) this.kick();
  }

  instructions(): bigint {
    return 0n;
  }

  ownExits(): Record<string, number> {
    const out: Record<string, number> = {};
    const add = (k: string, n: number) => { if (n) out[k] = n; };
    add('mmio-hot', Atomics.load(this.ctl, CTL_HOT_MMIO));
    add('sysreg-hot', Atomics.load(this.ctl, CTL_HOT_SYSREG));
    add('timer-hot', Atomics.load(this.ctl, CTL_HOT_TIMER));
    add('intr', this.exits.get('intr') ?? 0);
    return out;
  }

  close(): void {
    if (this.closed) return;
    try {
      this.quiesce();
    } finally {
      this.closed = true;
      Atomics.store(this.ctl, CTL_STATE, STATE_QUIT);
      Atomics.notify(this.ctl, CTL_STATE);
      // Let the worker drop its mapping of kvm_run (it holds the vCPU file open) before it goes.
      if (Atomics.load(this.ctl, CTL_READY) === 1) Atomics.wait(this.ctl, CTL_READY, 1, 1000);
      void this.worker.terminate();
      libc().close(this.fd);
      this.backend.unmapRunPage(this.runPtr);
    }
  }
}
