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

// Identity-mapped MMU (4K granule, 1 GiB level-1 blocks): RAM normal memory, the UART block as
// device memory, nothing else mapped.
const mmuOn = `
  adr x10, l1table
  ldr x11, =RAM
  lsr x12, x11, #30
  ldr x13, =0x701               // block | AF | inner shareable | AttrIndx 0
  orr x13, x13, x11
  str x13, [x10, x12, lsl #3]
  ldr x11, =UART
  lsr x12, x11, #30
  lsl x14, x12, #30
  ldr x13, =0x405               // block | AF | AttrIndx 1 (device)
  orr x13, x13, x14
  str x13, [x10, x12, lsl #3]
  msr ttbr0_el1, x10
  ldr x11, =0xff                // attr0 normal WB, attr1 device-nGnRnE
  msr mair_el1, x11
  ldr x11, =0x200803519         // T0SZ 25, WB/WB inner shareable, 4K, EPD1, IPS 40 bits
  msr tcr_el1, x11
  isb
  mrs x11, sctlr_el1
  orr x11, x11, #1
  orr x11, x11, #4
  orr x11, x11, #0x1000
  msr sctlr_el1, x11
  isb
`;

describe.skipIf(!ok)(`software backend with the MMU on (${ok ? 'unicorn' : why})`, () => {
  it('delivers a translation fault with the ESR and FAR the page tables imply', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
  ldr x3, =vectors
  msr vbar_el1, x3
${mmuOn}
  ldr x5, =0x1900001234         // not mapped: level 1 entry 100 is empty
  ldr x6, [x5, #8]
  mov w2, #'!'
  str w2, [x1, #0x20]
1: wfi
  b 1b
sync_handler:
  mrs x20, esr_el1
  mrs x21, far_el1
  mrs x22, elr_el1
  add x22, x22, #4
  msr elr_el1, x22
  mov w2, #'D'
  str w2, [x1, #0x20]
  eret
irq_handler:
fiq_handler:
  b .
.balign 4096
l1table: .skip 4096
${vectors}`);
    await loop.run({ timeoutMs: 5000 });
    const r = m.vcpus[0]!.getRegs();
    expect(con()).toBe('D!');
    expect(r.x[20]! >> 26n).toBe(0x25n); // data abort, same EL
    expect(r.x[20]! & 0x3fn).toBe(0x05n); // translation fault, level 1
    expect((r.x[20]! >> 6n) & 1n).toBe(0n); // a read
    expect(r.x[21]).toBe(0x190000123cn);
    m.destroy();
  });

  it('code patched by one vCPU (IC IVAU) is what the other vCPU executes next', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
${mmuOn}
  mrs x4, mpidr_el1
  and x4, x4, #0xff
  cbnz x4, secondary
  ldr x2, =IMPL1
  adr x3, _start
  str x3, [x2]
  ldr x2, =CPUSTART
  mov w3, #2
  str w3, [x2, #4]
  str w3, [x2, #8]
  adr x9, flag
0: ldr w3, [x9]                 // wait for CPU 1 to run patchme once
  cmp w3, #1
  b.ne 0b
  adr x5, patchme
  ldr w6, newinsn
  str w6, [x5]
  dc cvau, x5
  dsb ish
  ic ivau, x5
  dsb ish
  isb
  mov w3, #2
  str w3, [x9]
1: wfi
  b 1b
secondary:
  adr x9, flag
  bl patchme
  add w2, w0, #'0'
  str w2, [x1, #0x20]
  mov w3, #1
  str w3, [x9]
0: ldr w3, [x9]
  cmp w3, #2
  b.ne 0b
  bl patchme
  add w2, w0, #'0'
  str w2, [x1, #0x20]
1: wfi
  b 1b
patchme:
  mov w0, #1
  ret
newinsn:
  mov w0, #2
.balign 8
flag: .word 0
.balign 4096
l1table: .skip 4096
`, 2);
    loop.check = () => (con().length >= 2 ? { kind: 'requested', why: 'done' } : null);
    await loop.run({ timeoutMs: 10000 });
    expect(con()).toBe('12');
    m.destroy();
  });
});

describe.skipIf(!ok)(`software backend: EL0 and TLB maintenance (${ok ? 'unicorn' : why})`, () => {
  it('EL0: SVC and a MIDR read reach the EL1 vectors as SVC and UNDEF from the lower EL', async () => {
    const { m, loop, console: con } = guestMachine(`
.globl _start
_start:
  ldr x1, =UART
  ldr x3, =vectors
  msr vbar_el1, x3
  adr x3, el0
  msr elr_el1, x3
  ldr x3, =RAM + 0x100000
  msr sp_el0, x3
  msr spsr_el1, xzr             // EL0t, interrupts unmasked
  eret
el0:
  svc #7
  mrs x0, midr_el1              // UNDEFINED at EL0
  mov w2, #'!'
  str w2, [x1, #0x20]
1: b 1b
sync_lower:
  mrs x9, esr_el1
  lsr x10, x9, #26
  cmp x10, #0x15
  b.ne 2f
  mov w2, #'S'
  str w2, [x1, #0x20]
  eret
2: mov x21, x9
  mrs x22, elr_el1
  add x22, x22, #4
  msr elr_el1, x22
  mov w2, #'U'
  str w2, [x1, #0x20]
  eret
sync_handler:
irq_handler:
fiq_handler:
  b .
.balign 2048
vectors:
  .skip 0x200
  b sync_handler
  .balign 0x80
  b irq_handler
  .balign 0x80
  b fiq_handler
  .balign 0x80
  b .
  .balign 0x80
  b sync_lower                  // 0x400: lower EL, AArch64, synchronous
`);
    loop.check = () => (con().includes('!') ? { kind: 'requested', why: 'done' } : null);
    await loop.run({ timeoutMs: 5000 });
    expect(con()).toBe('SU!');
    const r = m.vcpus[0]!.getRegs();
    expect(r.x[21]! >> 26n).toBe(0n);
    expect((r.pstate >> 2n) & 3n).toBe(0n); // back at EL0
    m.destroy();
  });

  it("a broadcast TLBI on one vCPU drops the other vCPU's stale translation", async () => {
    const { m, loop, console: con } = guestMachine(`
.equ VA, 0x40000000
.equ OFF, 0x35200010            // UTRSTAT's offset inside its 1 GiB block
.globl _start
_start:
  ldr x1, =UART
${mmuOn}
  mrs x4, mpidr_el1
  and x4, x4, #0xff
  adr x10, l1table
  cbnz x4, secondary
  ldr x11, =RAM
  ldr x13, =0x701
  orr x13, x13, x11
  str x13, [x10, #8]            // VA 0x40000000 -> RAM
  ldr x12, =RAM + OFF
  mov w13, #0x1111
  str w13, [x12]
  dsb ish
  ldr x2, =IMPL1
  adr x3, _start
  str x3, [x2]
  ldr x2, =CPUSTART
  mov w3, #2
  str w3, [x2, #4]
  str w3, [x2, #8]
  adr x9, flag
0: ldr w3, [x9]
  cmp w3, #1
  b.ne 0b
  ldr x11, =UART
  lsr x11, x11, #30
  lsl x11, x11, #30
  ldr x13, =0x405
  orr x13, x13, x11
  str x13, [x10, #8]            // VA 0x40000000 -> the UART's block (device)
  dsb ishst
  tlbi vmalle1is
  dsb ish
  isb
  mov w3, #2
  str w3, [x9]
1: wfi
  b 1b
secondary:
  adr x9, flag
  ldr x5, =VA + OFF
  ldr w6, [x5]                  // through RAM: 0x1111
  mov w3, #1
  str w3, [x9]
0: ldr w3, [x9]
  cmp w3, #2
  b.ne 0b
  ldr w7, [x5]                  // through the new mapping: UTRSTAT
  mov w2, #'.'
  str w2, [x1, #0x20]
1: wfi
  b 1b
.balign 8
flag: .word 0
.balign 4096
l1table: .skip 4096
`, 2);
    loop.check = () => (con().includes('.') ? { kind: 'requested', why: 'done' } : null);
    await loop.run({ timeoutMs: 10000 });
    const r = m.vcpus[1]!.getRegs();
    expect(r.x[6]).toBe(0x1111n);
    expect(r.x[7]! & 6n).toBe(6n); // TX empty bits of UTRSTAT, not the stale RAM word
    m.destroy();
  });
});
