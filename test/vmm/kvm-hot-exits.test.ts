import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { HotExits } from '../../src/vmm/cpu/kvm/hot-exits.js';
import { setFiqPart, syncFiqLine } from '../../src/vmm/cpu/kvm/fiq-line.js';
import { CTL_FIQ_EXTERNAL, CTL_FIQ_LINE, CTL_FIQ_TIMER, CTL_HOT_MMIO, CTL_HOT_SYSREG, CTL_HOT_TIMER, CTL_KICK, CTL_WORDS } from '../../src/vmm/cpu/kvm/protocol.js';
import { runUntilHandover } from '../../src/vmm/cpu/kvm/worker-loop.js';
import { EINTR } from '../../src/host/libc.js';
import { EXIT, KVM_ARM_DEV_EL1_VTIMER, RUN } from '../../src/vmm/cpu/kvm/uapi.js';
import { S5lUart } from '../../src/vmm/devices/uart.js';
import { UART_HOT_REGISTERS, UART_TX_RING, UartShared } from '../../src/vmm/devices/uart-shared.js';
import { UCON_RXTHRESH_ENA, UCON_RXTO_ENA, UCON_TXTHRESH_ENA, uartRegs } from '../../src/vmm/regmaps/uart.js';
import { parseSysreg, sysregKey } from '../../src/vmm/sysregs/encoding.js';
import { M1SysregFile } from '../../src/vmm/sysregs/m1.js';
import { M1_SYSREG_ENTRIES } from '../../src/vmm/sysregs/m1-shared.js';

// The KVM vCPU thread's hot path (src/vmm/cpu/kvm/hot-exits.ts) serves exits from the devices'
// shared state. These tests drive it with kvm_run pages laid out as the kernel lays them out
// (offsets checked against the uapi headers by kvm-uapi.test.ts) and hold it to the device models:
// the same random access sequence, once all on the main thread and once with the hot path
// answering whatever it accepts, must give the same reads, output, interrupt levels and counts.

const UART_BASE = 0x235200000n;
const UART_SIZE = 0x4000n;

/** A xorshift PRNG, so that a failure names a seed that reproduces it. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s % n;
  };
}

function runPage(): DataView {
  return new DataView(new ArrayBuffer(4096));
}

function mmioExit(run: DataView, addr: bigint, size: number, write: boolean, value = 0): void {
  run.setUint32(RUN.exit_reason, EXIT.KVM_EXIT_MMIO, true);
  run.setBigUint64(RUN.mmio_phys_addr, addr, true);
  run.setBigUint64(RUN.mmio_data, BigInt(value >>> 0), true);
  run.setUint32(RUN.mmio_len, size, true);
  run.setUint8(RUN.mmio_is_write, write ? 1 : 0);
}

function sysregExit(run: DataView, enc: string, write: boolean, value = 0n): void {
  const e = parseSysreg(enc);
  run.setUint32(RUN.exit_reason, EXIT.KVM_EXIT_ARM_IMPDEF_SYSREG, true);
  run.setUint8(RUN.impdef_op0, e.op0);
  run.setUint8(RUN.impdef_op1, e.op1);
  run.setUint8(RUN.impdef_crn, e.crn);
  run.setUint8(RUN.impdef_crm, e.crm);
  run.setUint8(RUN.impdef_op2, e.op2);
  run.setUint8(RUN.impdef_is_write, write ? 1 : 0);
  run.setBigUint64(RUN.impdef_value, value, true);
}

function uartUnderTest() {
  const out: number[] = [];
  const levels: boolean[] = [];
  const uart = new S5lUart('uart0', { set: (l) => levels.push(l) }, (b) => out.push(...b));
  uart.shared.enabled = true;
  return { uart, out, levels };
}

const MPIDR = [0x0n, 0x1n];

function hotFor(uart: S5lUart, sysregs: M1SysregFile | null = null, cpu = 0, ipiChanged?: (target: number) => void): HotExits {
  return new HotExits({
    uarts: [{ base: UART_BASE, size: UART_SIZE, buffer: uart.shared.buffer }],
    sysregs: sysregs ? { cpus: sysregs.shared.cpus, buffer: sysregs.shared.buffer, mpidr: MPIDR } : null,
  }, cpu, ipiChanged);
}

const UCONS = [0n, UCON_TXTHRESH_ENA, UCON_RXTHRESH_ENA | UCON_RXTO_ENA, UCON_TXTHRESH_ENA | UCON_RXTHRESH_ENA | UCON_RXTO_ENA];

describe('KVM hot exits: the UART', () => {
  it('agrees with the device model on random access sequences', () => {
    let servedHot = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const ref = uartUnderTest();
      const sut = uartUnderTest();
      const hot = hotFor(sut.uart);
      const run = runPage();
      for (let step = 0; step < 400; step++) {
        const where = `seed ${seed} step ${step}`;
        const op = r(8);
        if (op === 0) {
          const bytes = Uint8Array.from({ length: 1 + r(20) }, () => r(256));
          ref.uart.receive(bytes);
          sut.uart.receive(bytes);
        } else if (op <= 3) {
          const off = 4 * r(12);
          const want = ref.uart.read(BigInt(off), 4);
          mmioExit(run, UART_BASE + BigInt(off), 4, false);
          let got: bigint;
          if (hot.serve(run) === 'mmio') {
            servedHot++;
            got = run.getBigUint64(RUN.mmio_data, true);
          } else {
            got = sut.uart.read(BigInt(off), 4);
          }
          expect(got, `${where}: read +0x${off.toString(16)}`).toBe(want);
        } else {
          const [off, value] =
            op <= 5 ? [0x20, BigInt(r(256))] :
            op === 6 ? [0x04, UCONS[r(UCONS.length)]!] :
            r(2) ? [0x10, BigInt(r(0x400))] : [0x08, BigInt(r(0x100))];
          ref.uart.write(BigInt(off), 4, value);
          mmioExit(run, UART_BASE + BigInt(off), 4, true, Number(value));
          if (hot.serve(run) === 'mmio') servedHot++;
          else sut.uart.write(BigInt(off), 4, value);
        }
        expect(sut.levels.at(-1) ?? false, `${where}: interrupt level`).toBe(ref.levels.at(-1) ?? false);
        if (r(16) === 0) sut.uart.drainTx();
      }
      sut.uart.drainTx();
      expect(Buffer.from(sut.out).equals(Buffer.from(ref.out)), `seed ${seed}: console output`).toBe(true);
      expect(sut.uart.txBytes).toBe(ref.uart.txBytes);
    }
    // The comparison means something only if the hot path took a good share of the accesses.
    expect(servedHot).toBeGreaterThan(4000);
  });

  it('serves every register the map marks hot, and nothing else', () => {
    const { uart } = uartUnderTest();
    const hot = hotFor(uart);
    const run = runPage();
    const marked = new Set(UART_HOT_REGISTERS.map((h) => h.name));
    expect(marked).toEqual(new Set(['UCON', 'UFCON', 'UTRSTAT', 'UFSTAT', 'UTXH']));
    for (const reg of uartRegs.regs) {
      mmioExit(run, UART_BASE + BigInt(reg.offset), 4, reg.hot === 'write', 0x41);
      const served = hot.serve(run) !== null;
      expect(served, reg.name).toBe(reg.hot !== undefined);
    }
  });

  it('forwards what it must: other widths, other devices, TX with its interrupt on, a full ring, tracing', () => {
    const { uart, out } = uartUnderTest();
    const hot = hotFor(uart);
    const run = runPage();
    mmioExit(run, UART_BASE + 0x10n, 1, false);
    expect(hot.serve(run)).toBeNull();
    mmioExit(run, 0x23b100000n, 4, false); // the AIC
    expect(hot.serve(run)).toBeNull();
    uart.write(0x04n, 4, UCON_TXTHRESH_ENA);
    mmioExit(run, UART_BASE + 0x20n, 4, true, 0x41);
    expect(hot.serve(run)).toBeNull();
    uart.write(0x04n, 4, 0n);
    for (let i = 0; i < UART_TX_RING; i++) {
      mmioExit(run, UART_BASE + 0x20n, 4, true, i & 0xff);
      expect(hot.serve(run)).toBe('mmio');
    }
    mmioExit(run, UART_BASE + 0x20n, 4, true, 0x5a);
    expect(hot.serve(run)).toBeNull(); // full: the device takes it, after what the ring holds
    uart.write(0x20n, 4, 0x5an);
    expect(out.length).toBe(UART_TX_RING + 1);
    expect(out.at(-1)).toBe(0x5a);
    expect(out[UART_TX_RING - 1]).toBe((UART_TX_RING - 1) & 0xff);
    uart.shared.enabled = false;
    mmioExit(run, UART_BASE + 0x10n, 4, false);
    expect(hot.serve(run)).toBeNull();
  });
});

describe('KVM hot exits: M1 system registers', () => {
  const mpidr = [0x0n, 0x1n];
  function file() {
    const lines = [false, false];
    const f = new M1SysregFile({ mpidr }, lines.map((_, i) => ({ set: (l: boolean) => { lines[i] = l; } })), () => 77n);
    f.shared.enabled = true;
    return { f, lines };
  }

  // Without FastIPI in the vCPU threads (software-style lines), and with it (KVM: the thread sets
  // the pending word and brings the target's FIQ line up to date, modelled here as line = word).
  it.each([false, true])('agrees with M1SysregFile on random accesses from two vCPUs (FastIPI served off the main thread: %s)', (ipiHot) => {
    const encs = [...M1_SYSREG_ENTRIES.map((d) => d.enc), 's3_0_c15_c12_7', 's3_3_c11_c0_0'];
    let servedHot = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      const ref = file();
      const sut = file();
      sut.f.shared.ipiHot = ipiHot;
      const changed = ipiHot ? (t: number) => { sut.lines[t] = sut.f.shared.ipiPending(t); } : undefined;
      const hots = [hotFor(uartUnderTest().uart, sut.f, 0, changed), hotFor(uartUnderTest().uart, sut.f, 1, changed)];
      const run = runPage();
      for (let step = 0; step < 500; step++) {
        // Bias towards the FastIPI registers, whose sharing is the subtle part.
        const enc = r(3) === 0 ? ['s3_5_c15_c0_0', 's3_5_c15_c1_1', 's3_5_c15_c3_1'][r(3)]! : encs[r(encs.length)]!;
        const cpu = r(2);
        const write = r(2) === 1;
        const value = write ? BigInt(r(4)) | (BigInt(r(0x10000)) << 16n) : 0n;
        const want = ref.f.access({ ...parseSysreg(enc), cpu, write, value });
        sysregExit(run, enc, write, value);
        let got: bigint;
        if (hots[cpu]!.serve(run) === 'sysreg') {
          servedHot++;
          got = write ? 0n : run.getBigUint64(RUN.impdef_value, true);
        } else {
          got = sut.f.accessKey(sysregKey(parseSysreg(enc)), write, value, cpu);
        }
        const where = `seed ${seed} step ${step}: cpu${cpu} ${write ? 'MSR' : 'MRS'} ${enc}`;
        expect(got, where).toBe(want);
        expect(sut.lines, where).toEqual(ref.lines);
      }
      expect(sut.f.accesses).toBe(ref.f.accesses);
      expect(Object.fromEntries(sut.f.unknown)).toEqual(Object.fromEntries(ref.f.unknown));
    }
    expect(servedHot).toBeGreaterThan(ipiHot ? 4500 : 3000);
  });

  it('leaves the counter, unknown registers and (unless the backend drives FIQ from the pending words) IPI requests to the main thread; off when traced', () => {
    const { f } = file();
    const hot = hotFor(uartUnderTest().uart, f, 0);
    const run = runPage();
    for (const enc of ['s3_4_c15_c10_6', 's3_5_c15_c0_0', 's3_5_c15_c0_1', 's3_0_c15_c12_7']) {
      sysregExit(run, enc, true, 1n);
      expect(hot.serve(run), enc).toBeNull();
    }
    // With a FIQ-line callback but IPI_HOT off (--trace irq), IPI requests still go to the main thread.
    const targets: number[] = [];
    const withIpi = hotFor(uartUnderTest().uart, f, 0, (t) => targets.push(t));
    sysregExit(run, 's3_5_c15_c0_0', true, 1n);
    expect(withIpi.serve(run)).toBeNull();
    f.shared.ipiHot = true;
    expect(withIpi.serve(run)).toBe('sysreg');
    expect(targets).toEqual([1]);
    expect(f.isIpiPending(1)).toBe(true);
    sysregExit(run, 's3_1_c15_c0_0', false);
    expect(hot.serve(run)).toBe('sysreg');
    f.shared.enabled = false;
    expect(hot.serve(run)).toBeNull();
  });
});

describe('KVM hot exits: the FIQ line both threads drive', () => {
  it('always ends at the OR of its parts, with one KVM_IRQ_LINE per change', () => {
    const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
    const calls: boolean[] = [];
    const ipi = { words: new Int32Array(new SharedArrayBuffer(8)), index: 1 };
    const sync = () => syncFiqLine(ctl, (l) => calls.push(l), ipi);
    const set = (word: number, level: boolean) => {
      if (setFiqPart(ctl, word, level)) sync();
    };
    set(CTL_FIQ_TIMER, true);
    set(CTL_FIQ_EXTERNAL, true);
    set(CTL_FIQ_TIMER, false);
    set(CTL_FIQ_TIMER, false);
    set(CTL_FIQ_EXTERNAL, false);
    expect(calls).toEqual([true, false]);
    // The FastIPI word is the third part: a timer falling while an IPI is pending keeps the line up.
    Atomics.store(ipi.words, 1, 1);
    sync();
    set(CTL_FIQ_TIMER, true);
    set(CTL_FIQ_TIMER, false);
    expect(calls).toEqual([true, false, true]);
    Atomics.store(ipi.words, 1, 0);
    sync();
    expect(calls).toEqual([true, false, true, false]);
    expect(ctl[CTL_FIQ_LINE]).toBe(0);
  });
});

// The vCPU thread's turn (worker-loop.ts) against a scripted KVM_RUN: each step sets up the kvm_run
// page as the kernel would after one return, so the loop's decisions (serve, forward, answer a
// timer EINTR, obey a kick) and its FIQ-line calls can be checked exit by exit.
describe('KVM vCPU thread: one turn against a scripted KVM_RUN', () => {
  type Step = { exit: (run: DataView) => void; rc?: number; errno?: number; timer?: boolean; kick?: boolean };
  const mmioRead = (off: number) => (run: DataView) => mmioExit(run, UART_BASE + BigInt(off), 4, false);
  const aicRead = (run: DataView) => mmioExit(run, 0x23b100000n, 4, false);
  const intr = (run: DataView) => run.setUint32(RUN.exit_reason, EXIT.KVM_EXIT_INTR, true);

  function turn(steps: Step[], withHot = true) {
    const { uart } = uartUnderTest();
    const f = new M1SysregFile({ mpidr: [0n] }, [{ set: () => {} }], () => 0n);
    f.shared.enabled = true;
    const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
    const run = runPage();
    const fiq: boolean[] = [];
    let i = 0;
    const r = runUntilHandover({
      ctl, run, hot: withHot ? hotFor(uart, f) : null, syncFiq: () => syncFiqLine(ctl, (l) => fiq.push(l), null),
      kvmRun: () => {
        const s = steps[i++];
        if (!s) throw new Error('the loop ran KVM past the script');
        s.exit(run);
        run.setBigUint64(RUN.device_irq_level, s.timer ? BigInt(KVM_ARM_DEV_EL1_VTIMER) : 0n, true);
        if (s.kick) Atomics.store(ctl, CTL_KICK, 1);
        return { rc: s.rc ?? 0, errno: s.errno ?? 0 };
      },
    });
    return { r, ran: i, fiq, ctl, run };
  }

  it('serves hot exits and timer EINTRs in place, hands over the first exit it cannot serve', () => {
    const t = turn([
      { exit: mmioRead(0x10) },
      { exit: (run) => sysregExit(run, 's3_1_c15_c0_0', false) },
      { exit: intr, rc: -1, errno: EINTR, timer: true },
      { exit: mmioRead(0x18), timer: true },
      { exit: intr, rc: -1, errno: EINTR, timer: false },
      { exit: aicRead },
    ]);
    expect(t.ran).toBe(6);
    expect(t.r).toEqual({ rc: 0, errno: 0 });
    expect(t.run.getUint32(RUN.exit_reason, true)).toBe(EXIT.KVM_EXIT_MMIO);
    expect([t.ctl[CTL_HOT_MMIO], t.ctl[CTL_HOT_SYSREG], t.ctl[CTL_HOT_TIMER]]).toEqual([2, 1, 2]);
    // One KVM_IRQ_LINE up when the timer rose, one down when it fell: none for unchanged levels.
    expect(t.fiq).toEqual([true, false]);
  });

  it('a kick hands over the very next exit, even one it could serve', () => {
    const t = turn([{ exit: mmioRead(0x10) }, { exit: mmioRead(0x10), kick: true }, { exit: mmioRead(0x10) }]);
    expect(t.ran).toBe(2);
    expect(t.ctl[CTL_HOT_MMIO]).toBe(1);
  });

  it('hands over errors other than EINTR, and everything when the hot path is off', () => {
    expect(turn([{ exit: intr, rc: -1, errno: 14 }]).r).toEqual({ rc: -1, errno: 14 });
    const off = turn([{ exit: mmioRead(0x10), timer: true }], false);
    expect(off.ran).toBe(1);
    expect(off.fiq).toEqual([true]); // the timer still reaches the FIQ line
    expect(off.ctl[CTL_HOT_MMIO]).toBe(0);
  });
});

describe('KVM hot exits across threads', () => {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/src');
  // Runs the compiled modules (npm test builds first): worker threads cannot load TypeScript.
  it('keeps every byte of two vCPU threads, each in order, while the main thread drains', async () => {
    expect(existsSync(path.join(dist, 'vmm/devices/uart-shared.js')), 'dist/ is built (npm run build)').toBe(true);
    const shared = new UartShared();
    shared.enabled = true;
    const N = 20000;
    const code = `
      const { workerData } = require('node:worker_threads');
      import(${JSON.stringify(path.join(dist, 'vmm/devices/uart-shared.js'))}).then(({ UartShared }) => {
        const s = new UartShared(workerData.buffer);
        for (let i = 0; i < workerData.n; ) if (s.hotWrite(0x20, workerData.tag | (i % 2 ? 1 : 0))) i++;
      });`;
    const workers = [0x10, 0x20].map((tag) => new Worker(code, { eval: true, workerData: { buffer: shared.buffer, n: N, tag } }));
    const done = Promise.all(workers.map((w) => new Promise((res, rej) => { w.on('exit', res); w.on('error', rej); })));
    const got: number[] = [];
    let finished = false;
    void done.then(() => { finished = true; });
    while (!finished || got.length < 2 * N) {
      const b = shared.drainTx();
      if (b) got.push(...b);
      else await new Promise((r) => setImmediate(r));
      if (finished && !b && got.length < 2 * N) break;
    }
    await done;
    expect(got.length).toBe(2 * N);
    for (const tag of [0x10, 0x20]) {
      const mine = got.filter((b) => (b & 0xf0) === tag);
      expect(mine.length).toBe(N);
      expect(mine.every((b, i) => b === (tag | (i % 2)))).toBe(true);
    }
    expect(shared.hotWrites).toBe(2 * N);
  });
});
