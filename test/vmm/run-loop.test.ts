import { describe, expect, it } from 'vitest';
import { Bus } from '../../src/vmm/bus.js';
import type { Vcpu, VcpuExit, VcpuRegs } from '../../src/vmm/cpu/backend.js';
import { CpuLines } from '../../src/vmm/interrupts.js';
import { RunLoop } from '../../src/vmm/run-loop.js';
import { GenericTimer } from '../../src/vmm/sysregs/generic-timer.js';
import { M1SysregFile } from '../../src/vmm/sysregs/m1.js';
import { S5lUart } from '../../src/vmm/devices/uart.js';

// The run loop with a scripted backend: no engine, synthetic exits.

class ScriptedVcpu implements Vcpu {
  running = true;
  reads: bigint[] = [];
  sysreads: bigint[] = [];
  irq = false;
  fiq = false;
  constructor(readonly index: number, private script: VcpuExit[]) {}
  run(): VcpuExit {
    return this.script.shift() ?? { kind: 'wfi' };
  }
  completeMmioRead(v: bigint) { this.reads.push(v); }
  completeSysregRead(v: bigint) { this.sysreads.push(v); }
  setIrq(l: boolean) { this.irq = l; }
  setFiq(l: boolean) { this.fiq = l; }
  getRegs(): VcpuRegs { return { x: new Array(31).fill(0n), sp: 0n, pc: 0n, pstate: 0n }; }
  setRegs() {}
  start() { this.running = true; }
  instructions() { return 0n; }
  stop() {}
  ended = 0;
  endSlice() { this.ended++; }
}

function target(vcpus: ScriptedVcpu[], now = () => 0n) {
  const out: number[] = [];
  const bus = new Bus();
  const lines = new CpuLines(vcpus.length, { setIrq: (c, l) => vcpus[c]!.setIrq(l), setFiq: (c, l) => vcpus[c]!.setFiq(l) });
  const uart = new S5lUart('uart0', { set() {} }, (b) => out.push(...b));
  bus.add(0x1000n, 0x100n, uart);
  const sysregs = new M1SysregFile({ mpidr: vcpus.map((_, i) => BigInt(i)) }, vcpus.map((_, i) => lines.fiqSource(i, 'fast-ipi')), now);
  const timers = vcpus.map((_, i) => new GenericTimer(now, lines.fiqSource(i, 'timer')));
  return { out, t: { vcpus, bus, sysregs, timers, lines, counter: now, poll() {} } };
}

describe('run loop', () => {
  it('turns MMIO and system-register exits into device calls', async () => {
    const v = new ScriptedVcpu(0, [
      { kind: 'mmio', addr: 0x1020n, size: 4, write: true, value: 0x4fn, reg: 1 },
      { kind: 'mmio', addr: 0x1010n, size: 4, write: false, value: 0n, reg: 2 },
      { kind: 'sysreg', op0: 3, op1: 0, crn: 15, crm: 0, op2: 0, write: true, value: 7n, reg: 3 },
      { kind: 'sysreg', op0: 3, op1: 0, crn: 15, crm: 0, op2: 0, write: false, value: 0n, reg: 3 },
      { kind: 'yield' },
    ]);
    const { out, t } = target([v]);
    const loop = new RunLoop(t);
    const stop = await loop.run({ timeoutMs: 2000 });
    expect(out).toEqual([0x4f]);
    expect(v.reads[0]! & 6n).toBe(6n);
    expect(v.sysreads).toEqual([7n]);
    expect(loop.stats.exits).toMatchObject({ mmio: 2, sysreg: 2, yield: 1, wfi: 1 });
    expect(stop.kind).toBe('hang');
  });

  it('a FastIPI from one vCPU wakes the other from WFI', async () => {
    const a = new ScriptedVcpu(0, [
      { kind: 'wfi' },
    ]);
    const b = new ScriptedVcpu(1, [
      { kind: 'sysreg', op0: 3, op1: 5, crn: 15, crm: 0, op2: 0, write: true, value: 0n, reg: 0 }, // IPI_RR_LOCAL -> core 0
      { kind: 'wfi' },
    ]);
    const { t } = target([a, b]);
    const loop = new RunLoop(t);
    let rounds = 0;
    loop.check = () => (++rounds >= 3 ? { kind: 'requested', why: 'enough' } : null);
    await loop.run({ timeoutMs: 2000 });
    expect(a.fiq).toBe(true);
    expect(t.sysregs.isIpiPending(0)).toBe(true);
  });

  it('sleeps until the next timer deadline when every vCPU waits', async () => {
    let now = 0n;
    const clock = () => now;
    const v = new ScriptedVcpu(0, [
      { kind: 'sysreg', op0: 3, op1: 3, crn: 14, crm: 2, op2: 2, write: true, value: 100n, reg: 0 },
      { kind: 'sysreg', op0: 3, op1: 3, crn: 14, crm: 2, op2: 1, write: true, value: 1n, reg: 0 },
      { kind: 'wfi' },
    ]);
    const { t } = target([v], clock);
    const loop = new RunLoop(t);
    setTimeout(() => { now = 200n; }, 20);
    loop.check = () => (v.fiq ? { kind: 'requested', why: 'timer fired' } : null);
    const stop = await loop.run({ timeoutMs: 3000 });
    expect(stop).toEqual({ kind: 'requested', why: 'timer fired' });
    expect(loop.stats.sleeps).toBeGreaterThan(0);
  });

  it('hands the turn over when an exit interrupts another vCPU', () => {
    const a = new ScriptedVcpu(0, []);
    const b = new ScriptedVcpu(1, []);
    const { t } = target([a, b]);
    const loop = new RunLoop(t);
    loop.handle(a, { kind: 'sysreg', op0: 3, op1: 0, crn: 15, crm: 0, op2: 0, write: true, value: 1n, reg: 0 }); // HID0
    expect(a.ended).toBe(0);
    loop.handle(a, { kind: 'sysreg', op0: 3, op1: 5, crn: 15, crm: 0, op2: 0, write: true, value: 1n, reg: 0 }); // FastIPI to core 1
    expect(b.fiq).toBe(true);
    expect(a.ended).toBe(1);
    expect(loop.stats.exits.handover).toBe(1);
  });
});
