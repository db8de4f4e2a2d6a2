import { describe, expect, it } from 'vitest';
import { tryLoadUnicorn } from '../../src/vmm/cpu/unicorn/ffi.js';
import { canAssemble } from './helpers/asm.js';
import { guestMachine } from './helpers/machine.js';

// Tiny arm64 guests assembled with clang + ld.lld, run on the Unicorn backend through the real
// machine (layout, bus, devices, run loop).

const ok = canAssemble && tryLoadUnicorn() !== null;
const why = !canAssemble ? 'clang/ld.lld/llvm-objcopy missing' : 'libunicorn.so.2 missing';

const vectors = `
.balign 2048
vectors:
  .skip 0x200
  b sync_handler          // current EL, SPx, synchronous
  .balign 0x80
  b irq_handler
  .balign 0x80
  b fiq_handler
  .balign 0x80
  b .
`;

describe.skipIf(!ok)(`software backend (${ok ? 'unicorn' : why})`, () => {
  it('MMIO console, M1 identity, IMPDEF registers, SVC and UNDEF through the vector table', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
  ldr x3, =vectors
  msr vbar_el1, x3
  mrs x5, midr_el1
  mrs x6, mpidr_el1
  ldr x2, =0x1234
  msr s3_0_c15_c0_0, x2        // HID0
  mrs x7, s3_0_c15_c0_0
  mrs x8, s3_3_c15_c7_7        // unknown IMPDEF: reads zero
  svc #0x42
  .word 0x00000000             // UDF: UNDEF
  mov w2, #'!'
  str w2, [x1, #0x20]
1: wfi
  b 1b
sync_handler:
  mrs x9, esr_el1
  lsr x10, x9, #26
  add x20, x20, #1
  mov w2, #'S'
  cmp x10, #0x15
  b.eq 2f
  mov w2, #'U'
  mrs x11, elr_el1
  add x11, x11, #4
  msr elr_el1, x11             // skip the UDF
  mov x21, x9
2: str w2, [x1, #0x20]
  eret
irq_handler:
fiq_handler:
  b .
${vectors}`);
    const stop = await loop.run({ timeoutMs: 5000 });
    const r = m.vcpus[0]!.getRegs();
    expect(stop.kind).toBe('hang'); // WFI with no timer armed
    expect(con()).toBe('SU!');
    expect(r.x[5]).toBe(0x611f0221n); // Icestorm MIDR through VPIDR_EL2
    expect(r.x[6]! & 0xffffffn).toBe(0n);
    expect(r.x[7]).toBe(0x1234n);
    expect(r.x[8]).toBe(0n);
    expect(r.x[20]).toBe(2n);
    expect(r.x[21]! >> 26n).toBe(0n); // EC 0: unknown reason (UNDEF)
    expect(m.sysregs.unknown.get('s3_3_c15_c7_7')).toBe(1);
    m.destroy();
  });

  it('takes a timer FIQ from the emulated CNTP timer', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
  ldr x3, =vectors
  msr vbar_el1, x3
  mov x2, #1000
  msr cntp_tval_el0, x2
  mov x2, #1
  msr cntp_ctl_el0, x2
  msr daifclr, #1              // unmask FIQ
1: wfi
  b 1b
sync_handler:
irq_handler:
  b .
fiq_handler:
  mrs x4, cntp_ctl_el0         // ENABLE | ISTATUS
  mov x2, #3
  msr cntp_ctl_el0, x2         // mask it
  mov w2, #'T'
  str w2, [x1, #0x20]
  mov w2, #'\\n'
  str w2, [x1, #0x20]
  eret
${vectors}`);
    loop.check = () => (con().includes('\n') ? { kind: 'requested', why: 'done' } : null);
    await loop.run({ timeoutMs: 5000 });
    expect(con()).toBe('T\n');
    expect(m.vcpus[0]!.getRegs().x[4]).toBe(5n);
    m.destroy();
  });

  it('powers on a second CPU through PMGR and exchanges a FastIPI', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
  ldr x3, =vectors
  msr vbar_el1, x3
  mrs x4, mpidr_el1
  and x4, x4, #0xff
  cbnz x4, secondary
  ldr x2, =IMPL1
  adr x3, _start
  str x3, [x2]                 // RVBAR of CPU 1
  ldr x2, =CPUSTART
  mov w3, #2
  str w3, [x2, #4]
  str w3, [x2, #8]             // cluster 0, core 1
  msr daifclr, #1
1: wfi
  b 1b
secondary:
  mov w2, #'2'
  str w2, [x1, #0x20]
  mov x2, #0
  msr s3_5_c15_c0_0, x2        // IPI_RR_LOCAL to core 0
2: wfi
  b 2b
sync_handler:
irq_handler:
  b .
fiq_handler:
  mrs x5, s3_5_c15_c1_1        // IPI_SR
  mov x2, #1
  msr s3_5_c15_c1_1, x2        // ack
  mov w2, #'I'
  str w2, [x1, #0x20]
  eret
${vectors}`, 2);
    loop.check = () => (con().includes('I') ? { kind: 'requested', why: 'done' } : null);
    await loop.run({ timeoutMs: 5000 });
    expect(con()).toBe('2I');
    expect(m.vcpus[1]!.running).toBe(true);
    expect(m.vcpus[0]!.getRegs().x[5]).toBe(1n);
    expect(m.sysregs.isIpiPending(0)).toBe(false);
    m.destroy();
  });
});
