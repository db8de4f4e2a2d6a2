import type { Bus } from './bus.js';
import type { Vcpu, VcpuExit } from './cpu/backend.js';
import type { CpuLines } from './interrupts.js';
import { GenericTimer, COUNTER_HZ, isPhysTimerReg, physTimerName } from './sysregs/generic-timer.js';
import type { M1SysregFile } from './sysregs/m1.js';
import { sysregKey } from './sysregs/encoding.js';

// The run loop: a deterministic round-robin over the powered-on vCPUs, one instruction-budget slice
// each per round, turning exits into device and system-register calls. When every running vCPU
// waits in WFI it sleeps until the next timer deadline; with nothing armed the guest has hung. It
// yields to the Node event loop regularly so console input, sockets and the gdb stub stay live.

export interface RunTarget {
  vcpus: readonly Vcpu[];
  bus: Bus;
  sysregs: M1SysregFile;
  timers: readonly GenericTimer[];
  lines: CpuLines;
  counter: () => bigint;
  /** Device work between rounds (spin-table release, watchdog). */
  poll(): void;
}

export type StopReason =
  | { kind: 'requested'; why: string }
  | { kind: 'hang'; why: string }
  | { kind: 'fatal'; why: string }
  | { kind: 'timeout' }
  | { kind: 'debug'; cpu: number };

export interface RunStats {
  exits: Record<string, number>;
  rounds: number;
  sleeps: number;
}

export interface TraceSink {
  sysreg?(cpu: number, name: string, write: boolean, value: bigint): void;
}

export class RunLoop {
  readonly stats: RunStats = { exits: {}, rounds: 0, sleeps: 0 };
  private readonly halted: boolean[];
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));
  private stopReason: StopReason | null = null;
  trace: TraceSink = {};
  /** Checked after every round: return a reason to stop (markers seen, watchdog reset...). */
  check: (() => StopReason | null) | null = null;
  /** Paused by the debugger: run() waits until resume(). */
  private paused = false;
  private resumeWaiter: (() => void) | null = null;
  /** Called when a vCPU stops on a breakpoint or step (the gdb stub). */
  onDebugStop: ((cpu: number) => void) | null = null;
  /** Hypercalls (HVC/SMC): return x0. Default: PSCI NOT_SUPPORTED. */
  onHypercall: (vcpu: Vcpu, smc: boolean, imm: number) => bigint = () => 0xffffffffffffffffn;

  constructor(readonly target: RunTarget) {
    this.halted = target.vcpus.map(() => false);
    for (const v of target.vcpus) v.setExitHandler?.((vcpu, exit) => this.handle(vcpu, exit));
  }

  private count(kind: string): void {
    const e = this.stats.exits;
    e[kind] = (e[kind] ?? 0) + 1;
  }

  /** Rising interrupt edges of the other vCPUs so far. */
  private othersRises(self: number): number {
    const r = this.target.lines.rises;
    let sum = 0;
    for (let i = 0; i < r.length; i++) if (i !== self) sum += r[i]!;
    return sum;
  }

  /** Serve one exit (inline from the backend, or from a run() return). When it interrupts another
   *  vCPU (an IPI, a device interrupt routed there), the current slice ends so that vCPU runs next. */
  handle(vcpu: Vcpu, exit: VcpuExit): void {
    if (!vcpu.endSlice || this.target.vcpus.length === 1) return this.dispatch(vcpu, exit);
    const before = this.othersRises(vcpu.index);
    this.dispatch(vcpu, exit);
    if (this.othersRises(vcpu.index) !== before) {
      this.count('handover');
      vcpu.endSlice();
    }
  }

  private dispatch(vcpu: Vcpu, exit: VcpuExit): void {
    const t = this.target;
    switch (exit.kind) {
      case 'mmio':
        this.count('mmio');
        if (exit.write) t.bus.write(exit.addr, exit.size, exit.value, vcpu.index);
        else vcpu.completeMmioRead(t.bus.read(exit.addr, exit.size, vcpu.index));
        return;
      case 'sysreg': {
        this.count('sysreg');
        const key = sysregKey(exit);
        const timer = isPhysTimerReg(key);
        const value = timer
          ? t.timers[vcpu.index]!.accessKey(key, exit.write, exit.value)
          : t.sysregs.accessKey(key, exit.write, exit.value, vcpu.index);
        if (this.trace.sysreg) {
          this.trace.sysreg(vcpu.index, timer ? physTimerName(key) : t.sysregs.nameOf(key), exit.write, exit.write ? exit.value : value);
        }
        if (!exit.write) vcpu.completeSysregRead(value);
        return;
      }
      case 'hypercall': {
        this.count('hypercall');
        const regs = vcpu.getRegs();
        regs.x[0] = this.onHypercall(vcpu, exit.smc, exit.imm);
        vcpu.setRegs({ x: regs.x });
        return;
      }
      default:
        return;
    }
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.resumeWaiter?.();
    this.resumeWaiter = null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  stop(reason: StopReason): void {
    if (!this.stopReason) this.stopReason = reason;
    this.resume();
    for (const v of this.target.vcpus) if (v.running) v.stop();
  }

  private runnable(i: number): boolean {
    const v = this.target.vcpus[i]!;
    if (!v.running) return false;
    if (this.halted[i]) {
      if (!this.target.lines.irqPending(i) && !this.target.lines.fiqPending(i)) return false;
      this.halted[i] = false;
    }
    return true;
  }

  /** One round: each runnable vCPU gets one slice. Returns whether any ran. */
  round(): boolean {
    const t = this.target;
    let ran = false;
    for (let i = 0; i < t.vcpus.length && !this.stopReason && !this.paused; i++) {
      if (!this.runnable(i)) continue;
      ran = true;
      const v = t.vcpus[i]!;
      for (;;) {
        const exit = v.run();
        if (exit.kind === 'mmio' || exit.kind === 'sysreg' || exit.kind === 'hypercall') {
          this.handle(v, exit);
          continue;
        }
        this.count(exit.kind);
        if (exit.kind === 'wfi') this.halted[i] = true;
        else if (exit.kind === 'fatal') this.stop({ kind: 'fatal', why: exit.reason });
        else if (exit.kind === 'debug') {
          this.pause();
          this.onDebugStop?.(i);
        }
        break;
      }
      this.tick();
    }
    this.stats.rounds++;
    t.poll();
    const r = this.check?.();
    if (r) this.stop(r);
    return ran;
  }

  /** Re-evaluate the timers against the counter. */
  private tick(): void {
    const now = this.target.counter();
    for (const tm of this.target.timers) tm.update(now);
  }

  /** Earliest timer deadline of a halted vCPU, in counter ticks; null if none is armed. */
  private nextDeadline(): bigint | null {
    let best: bigint | null = null;
    this.target.timers.forEach((tm, i) => {
      if (!this.target.vcpus[i]!.running) return;
      const d = tm.deadline();
      if (d !== null && (best === null || d < best)) best = d;
    });
    return best;
  }

  private wakeSleeper: (() => void) | null = null;

  /** Sleep on the event loop for up to `ms`, or until wake(). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeSleeper = null; resolve(); }, ms);
      this.wakeSleeper = () => { clearTimeout(t); this.wakeSleeper = null; resolve(); };
    });
  }

  /** Something outside the guest raised an interrupt (a network frame): end an idle sleep now. */
  wake(): void {
    this.wakeSleeper?.();
  }

  /** Run until stopped, the wall-clock deadline passes, or the guest hangs. */
  async run(opts: { timeoutMs?: number; yieldEveryMs?: number } = {}): Promise<StopReason> {
    this.stopReason = null;
    const start = Date.now();
    const yieldEvery = opts.yieldEveryMs ?? 20;
    let lastYield = Date.now();
    while (!this.stopReason) {
      if (this.paused) {
        await new Promise<void>((r) => { this.resumeWaiter = r; });
        lastYield = Date.now();
        continue;
      }
      const ran = this.round();
      if (this.stopReason) break;
      const now = Date.now();
      if (opts.timeoutMs !== undefined && now - start >= opts.timeoutMs) {
        this.stopReason = { kind: 'timeout' };
        break;
      }
      if (!ran) {
        const anyRunning = this.target.vcpus.some((v) => v.running);
        const deadline = this.nextDeadline();
        if (!anyRunning) {
          this.stopReason = { kind: 'hang', why: 'no vCPU is powered on' };
          break;
        }
        if (deadline === null) {
          // Input could still wake the guest: give the event loop a moment before calling it a hang.
          await this.sleep(50);
          lastYield = Date.now();
          if (!this.target.vcpus.some((_, i) => this.target.lines.irqPending(i) || this.target.lines.fiqPending(i))) {
            this.stopReason = { kind: 'hang', why: 'every vCPU waits in WFI and no timer is armed' };
          }
          continue;
        }
        const ticks = deadline - this.target.counter();
        const ms = ticks <= 0n ? 0 : Number((ticks * 1_000_000n) / COUNTER_HZ) / 1000;
        this.stats.sleeps++;
        if (ms < 2) {
          // Timers resolve to a millisecond: wait precisely (blocking) for short deadlines, but
          // still let the event loop run every yieldEvery ms.
          // The last 0.2 ms is spun on the counter: waking from a sleep takes about that long.
          if (ms > 0.2) Atomics.wait(this.sleeper, 0, 0, ms - 0.2);
          const spinUntil = process.hrtime.bigint() + 300_000n;
          while (this.target.counter() < deadline && process.hrtime.bigint() < spinUntil) { /* spin */ }
          if (Date.now() - lastYield >= yieldEvery) {
            await new Promise((r) => setImmediate(r));
            lastYield = Date.now();
          }
        } else {
          await this.sleep(Math.min(ms - 1, 100));
          lastYield = Date.now();
        }
        this.tick();
        continue;
      }
      if (now - lastYield >= yieldEvery) {
        await new Promise((r) => setImmediate(r));
        lastYield = Date.now();
      }
    }
    return this.stopReason;
  }

  instructions(): bigint {
    return this.target.vcpus.reduce((s, v) => s + v.instructions(), 0n);
  }
}
