import { describe, expect, it } from 'vitest';
import { Aic } from '../../src/vmm/devices/aic.js';
import { S5lUart } from '../../src/vmm/devices/uart.js';
import { CpuImplRegs, CpuStartBlock, PmgrPowerStates } from '../../src/vmm/devices/pmgr.js';
import { AppleWdt } from '../../src/vmm/devices/wdt.js';
import { aicRegs } from '../../src/vmm/regmaps/aic.js';
import { uartRegs, UTRSTAT_TXTHRESH, UCON_TXTHRESH_ENA } from '../../src/vmm/regmaps/uart.js';
import { cpuStartRegs } from '../../src/vmm/regmaps/pmgr.js';
import { wdtRegs } from '../../src/vmm/regmaps/wdt.js';
import { findReg, type RegMap } from '../../src/vmm/regmap.js';

// Device models driven through their register maps (offsets come from the maps, which follow
// Linux's drivers), checking the behaviour those drivers rely on.

const off = (map: RegMap, name: string, index = 0) => {
  const d = map.regs.find((r) => r.name === name)!;
  return BigInt(d.offset + index * (d.stride ?? d.width));
};

function lines(n: number) {
  const levels = new Array<boolean>(n).fill(false);
  return { levels, lines: levels.map((_, i) => ({ set: (l: boolean) => { levels[i] = l; } })) };
}

describe('AIC v1', () => {
  it('reports the IRQ count and each CPU its own number', () => {
    const { lines: ls } = lines(4);
    const aic = new Aic(896, ls);
    expect(aic.read(off(aicRegs, 'INFO'), 4, 0) & 0xffffn).toBe(896n);
    for (let c = 0; c < 4; c++) expect(aic.read(off(aicRegs, 'WHOAMI'), 4, c)).toBe(BigInt(c));
  });

  it('delivers an unmasked, targeted IRQ; reading EVENT masks it until MASK_CLR', () => {
    const { levels, lines: ls } = lines(2);
    const aic = new Aic(896, ls);
    const irq = 605;
    aic.write(off(aicRegs, 'TARGET_CPU', irq), 4, 0b10n, 0); // CPU 1 only
    aic.input(irq).set(true);
    expect(levels).toEqual([false, false]); // masked at reset
    aic.write(off(aicRegs, 'MASK_CLR', irq >> 5), 4, 1n << BigInt(irq & 31), 0);
    expect(levels).toEqual([false, true]);
    expect(aic.read(off(aicRegs, 'EVENT'), 4, 0)).toBe(0n); // not targeted at CPU 0
    expect(aic.read(off(aicRegs, 'EVENT'), 4, 1)).toBe(BigInt((1 << 16) | irq));
    expect(levels[1]).toBe(false); // masked by the read
    expect(aic.read(off(aicRegs, 'MASK_SET', irq >> 5), 4, 1) & (1n << BigInt(irq & 31))).not.toBe(0n);
    expect(aic.read(off(aicRegs, 'HW_STATE', irq >> 5), 4, 1) & (1n << BigInt(irq & 31))).not.toBe(0n);
    aic.write(off(aicRegs, 'MASK_CLR', irq >> 5), 4, 1n << BigInt(irq & 31), 1);
    expect(levels[1]).toBe(true); // still asserted by the device
    aic.input(irq).set(false);
    expect(levels[1]).toBe(false);
  });

  it('software-set IRQs and MMIO IPIs', () => {
    const { levels, lines: ls } = lines(2);
    const aic = new Aic(896, ls);
    aic.write(off(aicRegs, 'TARGET_CPU', 3), 4, 1n, 0);
    aic.write(off(aicRegs, 'MASK_CLR', 0), 4, 1n << 3n, 0);
    aic.write(off(aicRegs, 'SW_SET', 0), 4, 1n << 3n, 0);
    expect(levels[0]).toBe(true);
    aic.write(off(aicRegs, 'SW_CLR', 0), 4, 1n << 3n, 0);
    expect(levels[0]).toBe(false);
    aic.write(off(aicRegs, 'IPI_SEND'), 4, 0b10n, 0); // "other" IPI to CPU 1
    expect(levels).toEqual([false, true]);
    expect(aic.read(off(aicRegs, 'EVENT'), 4, 1)).toBe(BigInt((4 << 16) | 1));
    aic.write(off(aicRegs, 'IPI_ACK'), 4, 1n, 1);
    aic.write(off(aicRegs, 'IPI_MASK_CLR'), 4, 1n, 1);
    expect(levels[1]).toBe(false);
  });
});

describe('s5l UART', () => {
  it('prints UTXH bytes, reports TX empty, and raises the TX-threshold interrupt when enabled', () => {
    const out: number[] = [];
    let irq = false;
    const u = new S5lUart('uart0', { set: (l) => { irq = l; } }, (b) => out.push(...b));
    expect(u.read(off(uartRegs, 'UTRSTAT'), 4) & 6n).toBe(6n);
    u.write(off(uartRegs, 'UTXH'), 4, 0x41n);
    expect(out).toEqual([0x41]);
    expect(irq).toBe(false);
    u.write(off(uartRegs, 'UCON'), 4, UCON_TXTHRESH_ENA);
    expect(irq).toBe(true);
    u.write(off(uartRegs, 'UTRSTAT'), 4, UTRSTAT_TXTHRESH); // write 1 to clear
    expect(irq).toBe(false);
    expect(u.read(off(uartRegs, 'UTRSTAT'), 4) & UTRSTAT_TXTHRESH).toBe(0n);
  });

  it('queues input in a 16-byte FIFO', () => {
    const u = new S5lUart('uart0', { set() {} }, () => {});
    u.receive(new TextEncoder().encode('hi'));
    expect(u.read(off(uartRegs, 'UFSTAT'), 4) & 0xfn).toBe(2n);
    expect(u.read(off(uartRegs, 'UTRSTAT'), 4) & 1n).toBe(1n);
    expect(u.read(off(uartRegs, 'URXH'), 4)).toBe(0x68n);
    expect(u.read(off(uartRegs, 'URXH'), 4)).toBe(0x69n);
    expect(u.read(off(uartRegs, 'UTRSTAT'), 4) & 1n).toBe(0n);
    u.receive(new Uint8Array(20));
    expect(u.read(off(uartRegs, 'UFSTAT'), 4) & 0x100n).toBe(0x100n);
  });
});

describe('PMGR', () => {
  it('mirrors the target power state into the actual state (pmgr-pwrstate.c)', () => {
    const p = new PmgrPowerStates();
    p.write(0x270n, 4, 0x1000000fn);
    expect(p.read(0x270n)).toBe(0x100000ffn);
    p.write(0x270n, 4, 0x4n);
    expect((p.read(0x270n) >> 4n) & 0xfn).toBe(4n);
  });

  it('starts a core at its RVBAR through the CPU start block (m1n1 smp.c)', () => {
    const started: Array<[number, bigint]> = [];
    const impl = [new CpuImplRegs('cpu0-impl'), new CpuImplRegs('cpu1-impl')];
    impl[1]!.write(0n, 8, 0x800001000n);
    const start = new CpuStartBlock({ cpuOf: (cl, co) => (cl === 0 && co < 2 ? co : -1), resetVector: (c) => impl[c]!.rvbar, startCpu: (c, pc) => started.push([c, pc]) });
    start.write(off(cpuStartRegs, 'CPU_START_SYS'), 4, 1n << 1n);
    start.write(off(cpuStartRegs, 'CPU_START_CLUSTER', 0), 4, 1n << 1n);
    expect(started).toEqual([[1, 0x800001000n]]);
  });
});

describe('watchdog', () => {
  it('resets when WD1 reaches its bite time with RESET_EN (apple_wdt restart sequence)', () => {
    let now = 0n;
    let resets = 0;
    const w = new AppleWdt('wdt', { set() {} }, () => resets++, () => now);
    w.write(off(wdtRegs, 'WD1_BITE_TIME'), 4, 24_000_000n); // 1 s
    w.write(off(wdtRegs, 'WD1_CTRL'), 4, 4n);
    w.write(off(wdtRegs, 'WD1_CUR_TIME'), 4, 0n);
    now = 500_000_000n;
    w.poll();
    expect(resets).toBe(0);
    expect(w.read(off(wdtRegs, 'WD1_CUR_TIME'), 4)).toBe(12_000_000n);
    now = 1_000_000_000n;
    w.poll();
    expect(resets).toBe(1);
  });
});

describe('register maps', () => {
  it('have no overlapping registers', () => {
    for (const map of [aicRegs, uartRegs, wdtRegs, cpuStartRegs]) {
      for (const r of map.regs) {
        for (let i = 0; i < (r.count ?? 1); i++) {
          const o = r.offset + i * (r.stride ?? r.width);
          expect(findReg(map, o)?.def.name).toBe(r.name);
        }
      }
    }
  });
});

describe('scratch register block (cluster controllers)', () => {
  it('reads back what was written, at every width', async () => {
    const { ScratchRegisters } = await import('../../src/vmm/devices/scratch.js');
    const r = new ScratchRegisters('cluster0-acc');
    expect(r.read(0x10n, 8)).toBe(0n);
    r.write(0x10n, 8, 0x1122334455667788n);
    expect(r.read(0x10n, 4)).toBe(0x55667788n);
    expect(r.read(0x14n, 4)).toBe(0x11223344n);
    r.write(0x12n, 2, 0xabcdn);
    expect(r.read(0x10n, 8)).toBe(0x11223344abcd7788n);
    r.reset();
    expect(r.read(0x10n, 8)).toBe(0n);
  });
});
