import { describe, expect, it } from 'vitest';
import { FSC_ACCESS_FLAG, FSC_PERMISSION, FSC_TRANSLATION, walk, type Regime } from '../../src/vmm/cpu/pagewalk.js';

// Page tables built in a sparse memory: 16K granule, 47-bit VA (the Linux guests' configuration),
// and 4K with 39 bits.

class Mem {
  private readonly words = new Map<bigint, bigint>();
  set(pa: bigint, v: bigint) { this.words.set(pa, v); }
  read = (pa: bigint) => this.words.get(pa) ?? 0n;
}

const VALID = 1n, TABLE = 3n, PAGE = 3n, AF = 1n << 10n, AP_EL0 = 1n << 6n, AP_RO = 1n << 7n, PXN = 1n << 53n, UXN = 1n << 54n;

describe('stage-1 walk', () => {
  // 16K granule, T0SZ = 17 (47-bit): three levels (1..3) of 11 bits each, as Linux's
  // ARM64_16K_PAGES + VA_BITS_47 configuration.
  const tcr16k = 17n | (2n << 14n) | (17n << 16n) | (1n << 30n);
  function tables16k(leafAttrs: bigint) {
    const m = new Mem();
    const l1 = 0x84000n, l2 = 0x88000n, l3 = 0x8c000n;
    const va = 0x0000_1234_5678_4000n;
    const idx = (lvl: number) => (va >> BigInt(14 + 11 * (3 - lvl))) & 0x7ffn;
    m.set(l1 + idx(1) * 8n, l2 | TABLE);
    m.set(l2 + idx(2) * 8n, l3 | TABLE);
    m.set(l3 + idx(3) * 8n, 0x9_0000_0000n | PAGE | AF | leafAttrs);
    const r: Regime = { sctlr: 1n, tcr: tcr16k, ttbr0: l1, ttbr1: 0n };
    return { m, r, va };
  }

  it('translates a 16K page', () => {
    const { m, r, va } = tables16k(0n);
    expect(walk(va + 0x123n, 'read', 1, false, r, m.read)).toEqual({ ok: true, pa: 0x9_0000_0123n });
  });

  it('classifies faults: translation (with level), access flag, permission, PAN', () => {
    const { m, r, va } = tables16k(AP_EL0 | AP_RO);
    expect(walk(va + 0x4000n, 'read', 1, false, r, m.read)).toEqual({ ok: false, fsc: FSC_TRANSLATION, level: 3 });
    expect(walk(0x0000_2000_0000_0000n, 'read', 1, false, r, m.read)).toEqual({ ok: false, fsc: FSC_TRANSLATION, level: 1 });
    expect(walk(0x0000_1234_8000_0000n, 'read', 1, false, r, m.read)).toEqual({ ok: false, fsc: FSC_TRANSLATION, level: 2 });
    expect(walk(0x0000_8000_0000_0000n, 'read', 1, false, r, m.read)).toEqual({ ok: false, fsc: FSC_TRANSLATION, level: 0 }); // beyond 47 bits
    expect(walk(va, 'write', 0, false, r, m.read)).toEqual({ ok: false, fsc: FSC_PERMISSION, level: 3 }); // read-only
    expect(walk(va, 'read', 0, false, r, m.read).ok).toBe(true);
    expect(walk(va, 'read', 1, true, r, m.read)).toEqual({ ok: false, fsc: FSC_PERMISSION, level: 3 }); // PAN
    const noAf = tables16k(0n);
    noAf.m.set(0x8c000n + ((noAf.va >> 14n) & 0x7ffn) * 8n, 0x9_0000_0000n | PAGE);
    expect(walk(noAf.va, 'read', 1, false, noAf.r, noAf.m.read)).toEqual({ ok: false, fsc: FSC_ACCESS_FLAG, level: 3 });
  });

  it('execute permissions: UXN, PXN, and no EL1 execution of EL0-writable pages', () => {
    expect(walk(tables16k(UXN).va, 'exec', 0, false, tables16k(UXN).r, tables16k(UXN).m.read).ok).toBe(false);
    const p = tables16k(PXN);
    expect(walk(p.va, 'exec', 1, false, p.r, p.m.read).ok).toBe(false);
    expect(walk(p.va, 'exec', 0, false, p.r, p.m.read).ok).toBe(true); // EL0 execution depends on UXN only
    const w = tables16k(AP_EL0); // EL0 read/write
    expect(walk(w.va, 'exec', 1, false, w.r, w.m.read)).toEqual({ ok: false, fsc: FSC_PERMISSION, level: 3 });
  });

  it('translates 4K-granule blocks through TTBR1 for the upper half', () => {
    const m = new Mem();
    // T1SZ = 25 (39 bits), TG1 = 4K (2): level 1 has 512 x 1 GiB entries.
    const r: Regime = { sctlr: 1n, tcr: (25n << 16n) | (2n << 30n) | (1n << 7n), ttbr0: 0n, ttbr1: 0x10000n };
    const va = 0xffff_ff80_4000_1234n;
    m.set(0x10000n + ((va >> 30n) & 0x1ffn) * 8n, 0x8_4000_0000n | VALID | AF);
    expect(walk(va, 'read', 1, false, r, m.read)).toEqual({ ok: true, pa: 0x8_4000_1234n });
    expect(walk(0x1000n, 'read', 1, false, r, m.read)).toEqual({ ok: false, fsc: FSC_TRANSLATION, level: 0 }); // EPD0
  });

  it('passes addresses through with the MMU off', () => {
    expect(walk(0x8_0000_1000n, 'exec', 1, false, { sctlr: 0n, tcr: 0n, ttbr0: 0n, ttbr1: 0n }, () => null)).toEqual({ ok: true, pa: 0x8_0000_1000n });
  });
});
