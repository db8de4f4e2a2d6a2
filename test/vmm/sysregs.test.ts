import { describe, expect, it } from 'vitest';
import { M1SysregFile } from '../../src/vmm/sysregs/m1.js';
import { parseSysreg } from '../../src/vmm/sysregs/encoding.js';
import { GenericTimer, CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0 } from '../../src/vmm/sysregs/generic-timer.js';

const acc = (enc: string, cpu: number, write = false, value = 0n) => ({ ...parseSysreg(enc), cpu, write, value });

describe('M1 system registers', () => {
  const mpidr = [0x0n, 0x1n, 0x10100n, 0x10101n];
  function file() {
    const ipi = [false, false, false, false];
    const f = new M1SysregFile({ mpidr }, ipi.map((_, i) => ({ set: (l: boolean) => { ipi[i] = l; } })), () => 1234n);
    return { f, ipi };
  }

  it('HID and PMCR0 read back what was written, per CPU', () => {
    const { f } = file();
    f.access(acc('s3_0_c15_c0_0', 0, true, 0xdeadn));
    expect(f.access(acc('s3_0_c15_c0_0', 0))).toBe(0xdeadn);
    expect(f.access(acc('s3_0_c15_c0_0', 1))).toBe(0n);
    f.access(acc('s3_1_c15_c0_0', 2, true, 0x3003n));
    expect(f.access(acc('s3_1_c15_c0_0', 2))).toBe(0x3003n);
  });

  it('FastIPI: IPI_RR_LOCAL targets a core of the sender cluster, IPI_SR clears', () => {
    const { f, ipi } = file();
    f.access(acc('s3_5_c15_c0_0', 0, true, 1n)); // from cluster 0 to core 1
    expect(ipi).toEqual([false, true, false, false]);
    expect(f.access(acc('s3_5_c15_c1_1', 1))).toBe(1n);
    f.access(acc('s3_5_c15_c1_1', 1, true, 1n));
    expect(ipi[1]).toBe(false);
    f.access(acc('s3_5_c15_c0_0', 2, true, 1n)); // from cluster 1 to its core 1 = CPU 3
    expect(ipi[3]).toBe(true);
    f.access(acc('s3_5_c15_c0_1', 3, true, (0n << 16n) | 0n)); // global: cluster 0 core 0
    expect(ipi[0]).toBe(true);
  });

  it('unknown IMPDEF registers read as zero, ignore writes, and are counted once each', () => {
    const { f } = file();
    const seen: string[] = [];
    f.onUnknown = (n) => seen.push(n);
    f.access(acc('s3_3_c15_c7_7', 0, true, 5n));
    expect(f.access(acc('s3_3_c15_c7_7', 0))).toBe(0n);
    expect(seen).toEqual(['s3_3_c15_c7_7']);
    expect(f.unknown.get('s3_3_c15_c7_7')).toBe(2);
    expect(f.handles(parseSysreg('s3_3_c15_c7_7'))).toBe(true);
    expect(f.handles(parseSysreg('s3_0_c1_c0_0'))).toBe(false); // SCTLR_EL1 is the engine's
  });
});

describe('generic timer', () => {
  it('computes ISTATUS against the counter and raises its line while enabled and unmasked', () => {
    let now = 1000n;
    let level = false;
    const t = new GenericTimer(() => now, { set: (l) => { level = l; } });
    t.access(CNTP_CVAL_EL0, true, 1500n);
    t.access(CNTP_CTL_EL0, true, 1n);
    expect(t.access(CNTP_CTL_EL0, false, 0n)).toBe(1n);
    expect(t.deadline()).toBe(1500n);
    expect(BigInt.asIntN(32, t.access(CNTP_TVAL_EL0, false, 0n))).toBe(500n);
    now = 1500n;
    t.update();
    expect(level).toBe(true);
    expect(t.access(CNTP_CTL_EL0, false, 0n)).toBe(5n); // ENABLE | ISTATUS
    t.access(CNTP_CTL_EL0, true, 3n); // mask
    expect(level).toBe(false);
    expect(t.access(CNTP_CTL_EL0, false, 0n)).toBe(7n);
    t.access(CNTP_TVAL_EL0, true, 100n);
    t.access(CNTP_CTL_EL0, true, 1n);
    expect(level).toBe(false);
    expect(t.deadline()).toBe(1600n);
  });
});
