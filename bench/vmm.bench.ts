import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BenchResult } from './run.js';
import { peakRssMiB } from './measure.js';
import { assemble, asmTools, canAssemble } from './guest-asm.js';
import { which } from '../src/host/tools.js';
import { defaultLayoutPath, loadLayout } from '../src/dtb/layout.js';
import '../src/vmm/cpu/unicorn/register.js';
import { REG, UC_ARCH_ARM64, UC_CPU_ARM64_MAX, UC_CTL_CPU_MODEL_WRITE, UC_MODE_ARM, loadUnicorn, tryLoadUnicorn } from '../src/vmm/cpu/unicorn/ffi.js';
import { Machine } from '../src/vmm/machine.js';
import { RunLoop } from '../src/vmm/run-loop.js';
import { COUNTER_HZ } from '../src/vmm/sysregs/generic-timer.js';

// The software backend's costs, each against a baseline measured in the same run:
//  - guest MIPS on a tight loop, against qemu-system-aarch64 (TCG, -M virt -cpu max) running the
//    same loop bare-metal (qemu's start-up cost removed by a second, near-empty run);
//  - the cost of one MMIO exit and one trapped system-register access, against the same loop
//    reading RAM;
//  - interrupt latency (timer FIQ, FastIPI between two vCPUs), against one slice's duration;
//  - peak RSS with a 1 GiB guest and 4 vCPUs.

const LOOP_N = 40_000_000;
const ACCESS_N = 200_000;

function machine(cpus: number) {
  const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
  let text = '';
  const m = new Machine(layout, { layout, cpus, backend: 'software', console: (b) => { text += Buffer.from(b).toString('latin1'); } });
  const defs = `.equ UART, 0x${layout.uart0.base.toString(16)}\n.equ CPUSTART, 0x${layout.pmgr.cpuStart.base.toString(16)}\n.equ IMPL1, 0x${layout.cpus[1]!.implReg.base.toString(16)}\n`;
  return { m, layout, defs, console: () => text };
}

/** Run a guest until it prints `done`; returns wall seconds of the run loop. */
async function runGuest(src: string, cpus = 1): Promise<{ seconds: number; m: Machine; out: string }> {
  const g = machine(cpus);
  g.m.load(g.layout.ram.base, assemble(g.defs + src, g.layout.ram.base));
  g.m.vcpus[0]!.start(g.layout.ram.base, 0n);
  const loop = new RunLoop(g.m);
  loop.check = () => (g.console().includes('done') ? { kind: 'requested', why: 'done' } : null);
  const t0 = process.hrtime.bigint();
  const stop = await loop.run({ timeoutMs: 120_000 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (stop.kind !== 'requested') throw new Error(`bench guest stopped: ${JSON.stringify(stop)} ${g.console()}`);
  return { seconds, m: g.m, out: g.console() };
}

const printDone = `
  ldr x1, =UART
  adr x2, msg
9: ldrb w3, [x2], #1
  cbz w3, 8f
  str w3, [x1, #0x20]
  b 9b
8: wfi
  b 8b
msg: .asciz "done\\n"
.balign 4
`;

const tightLoop = (n: number) => `
.globl _start
_start:
  ldr x0, =${n}
1: subs x0, x0, #1
  b.ne 1b
`;

function qemuLoopSeconds(qemu: string, n: number): number {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-bench-'));
  try {
    // -M virt: RAM at 0x40000000; PSCI SYSTEM_OFF through HVC ends qemu.
    const bin = path.join(dir, 'loop.elf');
    const src = path.join(dir, 'loop.S'), obj = path.join(dir, 'loop.o');
    writeFileSync(src, `${tightLoop(n)}\n  ldr x0, =0x84000008\n  hvc #0\n  b .\n`);
    spawnSync(asmTools.clang!, ['-target', 'aarch64-none-elf', '-c', src, '-o', obj]);
    spawnSync(asmTools.lld!, ['-Ttext', '0x40080000', '-e', '_start', obj, '-o', bin]);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(qemu, ['-M', 'virt', '-cpu', 'max', '-nodefaults', '-nographic', '-monitor', 'none', '-serial', 'none', '-kernel', bin], { timeout: 120_000 });
    if (r.status !== 0) throw new Error(`qemu: ${r.stderr}`);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The alternative to MMIO regions: leave device space unmapped, let the engine stop on the access,
 * emulate it and restart. Its floor is one uc_emu_start per access (measured with one-instruction
 * runs); Unicorn also reports the TB's first PC, not the faulting one, after an unmapped access.
 */
function restartCostUs(): number {
  const lib = loadUnicorn();
  const out: unknown[] = [null];
  lib.uc_open(UC_ARCH_ARM64, UC_MODE_ARM, out);
  const uc = out[0];
  lib.uc_ctl(uc, UC_CTL_CPU_MODEL_WRITE, 'int', UC_CPU_ARM64_MAX);
  const ram = Buffer.alloc(1 << 16);
  for (let i = 0; i < 1024; i++) ram.writeUInt32LE(0xd503201f, i * 4); // NOP
  lib.uc_mem_map_ptr(uc, 0x80000000n, ram.length, 7, ram);
  const n = 20000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) lib.uc_emu_start(uc, 0x80000000n + BigInt((i % 1024) * 4), 1n, 0, 1);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  lib.uc_reg_read(uc, REG.PC, new BigUint64Array(1));
  lib.uc_close(uc);
  return us;
}

export default async function (): Promise<BenchResult[]> {
  if (!canAssemble || !tryLoadUnicorn()) return [{ name: 'vmm', value: 'skipped', note: 'needs clang/ld.lld/llvm-objcopy and libunicorn.so.2' }];
  const out: BenchResult[] = [];

  // Guest MIPS.
  const small = await runGuest(tightLoop(1000) + printDone);
  small.m.destroy();
  const big = await runGuest(tightLoop(LOOP_N) + printDone);
  big.m.destroy();
  const mips = (2 * LOOP_N) / (big.seconds - small.seconds) / 1e6;
  const qemu = which(['qemu-system-aarch64']);
  let qemuMips: number | undefined;
  if (qemu) qemuMips = (2 * LOOP_N) / (qemuLoopSeconds(qemu, LOOP_N) - qemuLoopSeconds(qemu, 1000)) / 1e6;
  out.push({
    name: 'vmm: guest MIPS, tight loop (1 vCPU)',
    value: `${mips.toFixed(0)} MIPS`,
    baseline: qemuMips ? `qemu TCG -cpu max ${qemuMips.toFixed(0)} MIPS` : 'qemu-system-aarch64 not installed',
    ratio: qemuMips ? mips / qemuMips : undefined,
    note: 'ours / qemu, higher is faster',
  });

  // MMIO and trapped system-register costs against RAM reads.
  const accessLoop = (insn: string) => `
.globl _start
_start:
  ldr x1, =UART
  adr x4, scratch
  ldr x0, =${ACCESS_N}
1: ${insn}
  subs x0, x0, #1
  b.ne 1b
${printDone}
.balign 8
scratch: .quad 0
`;
  const ram = await runGuest(accessLoop('ldr w2, [x4]'));
  ram.m.destroy();
  const mmio = await runGuest(accessLoop('ldr w2, [x1, #0x10]'));
  mmio.m.destroy();
  const sys = await runGuest(accessLoop('mrs x2, s3_5_c15_c1_1'));
  sys.m.destroy();
  const perRam = (ram.seconds / ACCESS_N) * 1e6;
  const perMmio = ((mmio.seconds - ram.seconds) / ACCESS_N) * 1e6;
  const perSys = ((sys.seconds - ram.seconds) / ACCESS_N) * 1e6;
  out.push({ name: 'vmm: MMIO exit (UART UTRSTAT read)', value: `${perMmio.toFixed(2)} us`, baseline: `RAM-read loop iteration ${perRam.toFixed(3)} us`, ratio: perMmio / perRam, note: 'extra time per access / RAM iteration' });
  const restart = restartCostUs();
  out.push({ name: 'vmm: MMIO region vs stop-and-restart per access', value: `${perMmio.toFixed(2)} us`, baseline: `engine restart alone ${restart.toFixed(2)} us`, ratio: restart / perMmio, note: 'restart / region callback: why device space is uc_mmio_map regions' });
  out.push({ name: 'vmm: trapped IMPDEF MRS (IPI_SR)', value: `${perSys.toFixed(2)} us`, baseline: `RAM-read loop iteration ${perRam.toFixed(3)} us`, ratio: perSys / perRam, note: 'extra time per access / RAM iteration' });

  // Timer FIQ latency: 200 rounds of "deadline = now + 50000 ticks (0.8 ms); wait"; the handler adds
  // up (counter at entry - deadline).
  const timer = await runGuest(`
.globl _start
_start:
  adr x3, vectors
  msr vbar_el1, x3
  mov x20, #0                  // sum of latencies (ticks)
  mov x21, #200
  msr daifclr, #1
1: mrs x5, cntpct_el0
  ldr x6, =50000
  add x5, x5, x6
  msr cntp_cval_el0, x5
  mov x2, #1
  msr cntp_ctl_el0, x2
2: cbnz x22, 3f
  wfi
  b 2b
3: mov x22, #0
  subs x21, x21, #1
  b.ne 1b
  ldr x4, =RESULT
  str x20, [x4]
${printDone}
.balign 2048
vectors:
  .skip 0x300
  mrs x6, cntpct_el0
  sub x6, x6, x5
  add x20, x20, x6
  mov x2, #3
  msr cntp_ctl_el0, x2
  mov x22, #1
  eret
`.replace('RESULT', '0x800100000'));
  const ticks = timer.m.readRam64(0x800100000n);
  timer.m.destroy();
  const timerUs = (Number(ticks) / 200 / Number(COUNTER_HZ)) * 1e6;

  // FastIPI latency: vCPU 1 stamps the counter and sends; vCPU 0's handler stamps again.
  const ipi = await runGuest(`
.globl _start
_start:
  adr x3, vectors
  msr vbar_el1, x3
  mrs x4, mpidr_el1
  and x4, x4, #0xff
  cbnz x4, sender
  ldr x2, =IMPL1
  adr x3, _start
  str x3, [x2]
  ldr x2, =CPUSTART
  mov w3, #2
  str w3, [x2, #4]
  str w3, [x2, #8]
  mov x20, #0
  mov x21, #0
  msr daifclr, #1
0: cmp x21, #100
  b.hs 4f
  wfi
  b 0b
4:
  ldr x4, =0x800100000
  str x20, [x4]
${printDone}
sender:
  ldr x9, =0x800100100          // stamp, and the receiver's ack count
  mov x10, #0
1: mrs x5, cntpct_el0
  str x5, [x9]
  mov x2, #0
  msr s3_5_c15_c0_0, x2
2: ldr x11, [x9, #8]
  cmp x11, x10
  b.eq 2b
  mov x10, x11
  cmp x10, #100
  b.lo 1b
3: wfi
  b 3b
.balign 2048
vectors:
  .skip 0x300
  mrs x6, cntpct_el0
  ldr x7, =0x800100100
  ldr x8, [x7]
  sub x6, x6, x8
  add x20, x20, x6
  mov x2, #1
  msr s3_5_c15_c1_1, x2
  add x21, x21, #1
  str x21, [x7, #8]
  eret
`, 2);
  const ipiTicks = ipi.m.readRam64(0x800100000n);
  const slice = (ipi.m.vcpus[0] as { sliceInstructions?: number }).sliceInstructions ?? 0;
  ipi.m.destroy();
  const ipiUs = (Number(ipiTicks) / 100 / Number(COUNTER_HZ)) * 1e6;
  const sliceUs = (slice / (mips * 1e6)) * 1e6;
  out.push({ name: 'vmm: timer FIQ latency (deadline -> handler)', value: `${timerUs.toFixed(1)} us`, baseline: `one ${slice}-instruction slice ${sliceUs.toFixed(0)} us`, ratio: timerUs / sliceUs, note: 'latency / slice, lower is better' });
  out.push({ name: 'vmm: FastIPI latency (2 vCPUs, send -> handler)', value: `${ipiUs.toFixed(1)} us`, baseline: `one ${slice}-instruction slice ${sliceUs.toFixed(0)} us`, ratio: ipiUs / sliceUs, note: 'latency / slice, lower is better' });

  // Memory: 4 vCPUs (4 engines) with 1 GiB of guest RAM, after a run.
  const mem = await runGuest(tightLoop(1_000_000) + printDone, 4);
  const touched = mem.m.ram.bytes.length;
  mem.m.destroy();
  out.push({ name: 'vmm: peak RSS, 4 vCPUs, 1 GiB guest RAM', value: `${peakRssMiB().toFixed(0)} MiB`, baseline: `budget: touched guest RAM + 300 MiB (RAM is ${touched >> 20} MiB, mostly untouched)`, peakRssMiB: peakRssMiB(), note: 'whole bench process' });
  return out;
}
