import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadLayout, defaultLayoutPath, deviceMap, selectCpus, withRamSize, pcieIntxIrq } from '../../src/dtb/layout.js';
import { FormatError } from '../../src/errors.js';

const path = defaultLayoutPath();
const text = readFileSync(path, 'utf8');

/** The shipped layout with one line edited. */
function edited(from: string, to: string): string {
  expect(text).toContain(from);
  return text.replace(from, to);
}

function errorOf(yaml: string): FormatError {
  try {
    loadLayout(yaml, 'x.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error('loadLayout accepted a bad layout');
}

describe('layout: the shipped t8103-virt.yaml', () => {
  const l = loadLayout(text, path);

  it('has 8 CPUs in two clusters with the M1 MPIDRs', () => {
    expect(l.cpus).toHaveLength(8);
    expect(l.clusters.map((c) => c.type)).toEqual(['E', 'P']);
    expect(l.cpus[4]).toMatchObject({ cluster: 1, core: 0, type: 'P', mpidr: 0x10100n });
  });

  it('puts RAM at 0x8_0000_0000 (1 GiB) and the spin table release addresses 8 bytes apart', () => {
    expect(l.ram).toEqual({ base: 0x8_0000_0000n, size: 0x4000_0000n });
    expect(l.boot.linux.releaseAddrs[3]! - l.boot.linux.releaseAddrs[2]!).toBe(8n);
  });

  it('derives the PMGR CPU start block and power-state addresses from the PMGR base', () => {
    expect(l.pmgr.cpuStart.base - l.pmgr.base).toBe(0x54000n);
    const uart0 = l.pmgr.powerStates.find((p) => p.name === 'uart0')!;
    expect(uart0.address).toBe(l.pmgr.base + uart0.offset);
  });

  it('gives a sorted device map with no overlaps', () => {
    const m = deviceMap(l);
    for (let i = 1; i < m.length; i++) expect(m[i]!.base >= m[i - 1]!.base + m[i - 1]!.size).toBe(true);
    expect(m.find((e) => e.kind === 'uart')).toMatchObject({ irq: 605 });
  });

  it('selectCpus keeps the first N CPUs and drops empty clusters', () => {
    const two = selectCpus(l, 2);
    expect(two.cpus).toHaveLength(2);
    expect(two.clusters).toHaveLength(1);
    expect(two.boot.linux.releaseAddrs).toHaveLength(2);
    expect(() => selectCpus(l, 9)).toThrow(RangeError);
  });

  it('withRamSize revalidates: boot objects must still fit', () => {
    expect(withRamSize(l, 0x1_0000_0000n).ram.size).toBe(0x1_0000_0000n);
    expect(() => withRamSize(l, 0x1000_0000n)).toThrow(/outside ram/);
  });

  it('swizzles PCI INTx per slot', () => {
    expect(pcieIntxIrq(l, 0, 1)).toBe(l.pcie.intx[0]);
    expect(pcieIntxIrq(l, 1, 1)).toBe(l.pcie.intx[1]);
    expect(pcieIntxIrq(l, 3, 2)).toBe(l.pcie.intx[0]);
  });
});

describe('layout: bad layouts are rejected with the place and both items', () => {
  it('overlapping devices', () => {
    const e = errorOf(edited('base: 0x2_3d2b_0000', 'base: 0x2_3b70_4000'));
    expect(e.oneLine()).toMatch(/x\.yaml: offset 0x[0-9a-f]+: layout: line \d+: (wdt .* overlaps pmgr|pmgr .* overlaps wdt)/);
  });

  it('a boot object outside RAM', () => {
    const e = errorOf(edited('initrd:    { base: 0x8_0a00_0000', 'initrd:    { base: 0x8_3c00_0000'));
    expect(e.detail).toMatch(/boot\.linux\.initrd .* lies outside ram/);
  });

  it('overlapping boot objects', () => {
    const e = errorOf(edited('bootArgs:   { base: 0x8_1410_0000', 'bootArgs:   { base: 0x8_1400_0000'));
    expect(e.detail).toMatch(/boot\.xnu\.(bootArgs|deviceTree) .* overlaps boot\.xnu\.(deviceTree|bootArgs)/);
  });

  it('misaligned RAM and device windows', () => {
    expect(errorOf(edited('size: 0x4000_0000 ', 'size: 0x4000_1000 ')).detail).toMatch(/ram .* not aligned to 0x4000/);
    expect(errorOf(edited('base: 0x2_3520_0000', 'base: 0x2_3520_0800')).detail).toMatch(/uart0 .* not aligned to 0x1000/);
  });

  it('a gap in core numbering', () => {
    const e = errorOf(edited('{ core: 2, mpidr: 0x2,', '{ core: 5, mpidr: 0x5,'));
    expect(e.detail).toMatch(/cpu2 in cluster 0 has core 5: .*expected 2/);
  });

  it('the line of a schema error', () => {
    const e = errorOf(edited('irqs: 896', 'irqs: many'));
    const line = text.split('\n').findIndex((s) => s.includes('irqs: 896')) + 1;
    expect(e.detail).toContain(`line ${line}: aic.irqs`);
  });

  it('an unknown key and a YAML syntax error', () => {
    expect(errorOf(edited('fastIpi: true', 'fastIpi: true\n  colour: red')).detail).toMatch(/unknown key "colour"/);
    expect(errorOf('ram: [').detail).toMatch(/line 1/);
  });

  it('an IRQ the AIC does not have, and an IRQ used twice', () => {
    expect(errorOf(edited('irq: 605', 'irq: 5000')).detail).toMatch(/must be <= 4095|does not exist/);
    expect(errorOf(edited('irq: 605', 'irq: 896')).detail).toMatch(/AIC IRQ 896 does not exist/);
    expect(errorOf(edited('irq: 605', 'irq: 338')).detail).toMatch(/uses AIC IRQ 338 like uart0/);
  });
});
