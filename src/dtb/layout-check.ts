import { FormatError } from '../errors.js';
import { hex } from '../util/hex.js';
import { placedWindows } from './device-map.js';
import { yamlError, type YamlPath, type YamlSource } from './layout-source.js';
import type { VmLayout, Window } from './layout-types.js';

// Consistency of a layout beyond its schema: nothing overlaps, everything is aligned, boot objects
// lie in RAM, CPUs are numbered without gaps, IRQs exist. Each error names the items involved and
// points at the first one in the file.

const KiB4 = 0x1000n;
const KiB16 = 0x4000n;
const MiB1 = 0x10_0000n;
const MiB2 = 0x20_0000n;

const span = (w: Window) => `[${hex(w.base)}, ${hex(w.base + w.size)})`;

class Checker {
  constructor(private readonly layout: VmLayout, private readonly src: YamlSource | null) {}

  fail(path: YamlPath, detail: string): never {
    if (this.src) throw yamlError('layout', this.src, path, detail);
    throw new FormatError('layout', 0n, detail, this.layout.file);
  }

  window(name: string, path: YamlPath, w: Window, align: bigint, what: string): void {
    if (w.size === 0n) this.fail(path, `${name}: size is zero`);
    if (w.base + w.size > 1n << 64n) this.fail(path, `${name} ${span(w)} runs past the 64-bit address space`);
    if (w.base % align !== 0n || w.size % align !== 0n) {
      this.fail(path, `${name} ${span(w)} (size ${hex(w.size)}) is not aligned to ${hex(align)} (${what})`);
    }
  }

  disjoint(items: { name: string; path: YamlPath; w: Window }[], what: string): void {
    const sorted = [...items].sort((a, b) => (a.w.base < b.w.base ? -1 : a.w.base > b.w.base ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!, b = sorted[i]!;
      if (b.w.base < a.w.base + a.w.size) {
        this.fail(b.path, `${b.name} ${span(b.w)} overlaps ${a.name} ${span(a.w)} (${what})`);
      }
    }
  }

  inside(name: string, path: YamlPath, w: Window, outerName: string, outer: Window): void {
    if (w.base < outer.base || w.base + w.size > outer.base + outer.size) {
      this.fail(path, `${name} ${span(w)} lies outside ${outerName} ${span(outer)}`);
    }
  }

  irq(name: string, path: YamlPath, irq: number): void {
    if (irq >= this.layout.aic.irqs) this.fail(path, `${name}: AIC IRQ ${irq} does not exist (the AIC has ${this.layout.aic.irqs})`);
  }

  run(): void {
    const l = this.layout;
    // The physical map: RAM and device windows.
    const placed = placedWindows(l).map(({ entry, path }) => ({ name: entry.name, path, w: entry as Window, kind: entry.kind }));
    for (const p of placed) {
      if (p.kind === 'ram') this.window(p.name, p.path, p.w, KiB16, 'RAM uses 16 KiB pages');
      else this.window(p.name, p.path, p.w, KiB4, 'device windows are 4 KiB aligned');
    }
    this.disjoint(placed, 'physical address map');

    // Blocks inside devices.
    if (l.aic.timebase) this.inside('aic.timebase', ['aic', 'timebase'], l.aic.timebase, 'aic', l.aic);
    this.inside('pmgr.cpuStart', ['pmgr', 'cpuStart'], l.pmgr.cpuStart, 'pmgr', l.pmgr);
    const psNames = new Set<string>();
    const psOffsets = new Map<bigint, string>();
    l.pmgr.powerStates.forEach((ps, i) => {
      const path = ['pmgr', 'powerStates', i];
      if (ps.offset % 4n !== 0n) this.fail(path, `power state ${ps.name}: offset ${hex(ps.offset)} is not 4-byte aligned`);
      this.inside(`power state ${ps.name}`, path, { base: ps.address, size: 4n }, 'pmgr', l.pmgr);
      if (psNames.has(ps.name)) this.fail(path, `power state ${ps.name} is listed twice`);
      const other = psOffsets.get(ps.offset);
      if (other) this.fail(path, `power state ${ps.name} uses offset ${hex(ps.offset)} like ${other}`);
      if (ps.parent !== undefined && !psNames.has(ps.parent)) {
        this.fail(path, `power state ${ps.name}: parent ${ps.parent} is not listed before it`);
      }
      psNames.add(ps.name);
      psOffsets.set(ps.offset, ps.name);
    });

    this.cpus();
    this.interrupts();
    this.pcie();
    this.boot();
  }

  cpus(): void {
    const l = this.layout;
    const mpidrs = new Map<bigint, number>();
    l.clusters.forEach((c, ci) => {
      if (c.id !== ci) this.fail(['clusters', ci, 'id'], `cluster ${c.id} is at position ${ci}: cluster ids must be 0, 1, ... in order (after cluster ${ci - 1})`);
      c.cpus.forEach((cpu, k) => {
        const path = ['clusters', ci, 'cpus', k];
        const p = l.cpus[cpu]!;
        if (p.core !== k) this.fail([...path, 'core'], `cpu${cpu} in cluster ${c.id} has core ${p.core}: cores must be numbered 0, 1, ... without gaps (expected ${k})`);
        if ((p.mpidr & ~0xff_00ff_ffffn) !== 0n) this.fail([...path, 'mpidr'], `cpu${cpu}: MPIDR ${hex(p.mpidr)} has bits outside Aff2.Aff1.Aff0`);
        if ((p.mpidr & 0xffn) !== BigInt(p.core)) this.fail([...path, 'mpidr'], `cpu${cpu}: MPIDR ${hex(p.mpidr)} has Aff0 ${p.mpidr & 0xffn}, not its core number ${p.core}`);
        const dup = mpidrs.get(p.mpidr);
        if (dup !== undefined) this.fail([...path, 'mpidr'], `cpu${cpu} has the same MPIDR ${hex(p.mpidr)} as cpu${dup}`);
        mpidrs.set(p.mpidr, cpu);
      });
    });
  }

  interrupts(): void {
    const l = this.layout;
    const owners = new Map<number, string>();
    const claim = (name: string, path: YamlPath, irq: number) => {
      this.irq(name, path, irq);
      const o = owners.get(irq);
      if (o) this.fail(path, `${name} uses AIC IRQ ${irq} like ${o}`);
      owners.set(irq, name);
    };
    claim('uart0', ['uart0', 'irq'], l.uart0.irq);
    claim('watchdog', ['watchdog', 'irq'], l.watchdog.irq);
    l.pcie.intx.forEach((irq, i) => claim(`pcie INT${'ABCD'[i]}`, ['pcie', 'intx', i], irq));
    const names = new Set<string>();
    l.timer.interrupts.forEach((t, i) => {
      if (names.has(t.name)) this.fail(['timer', 'interrupts', i], `timer interrupt ${t.name} is listed twice`);
      names.add(t.name);
    });
  }

  pcie(): void {
    const p = this.layout.pcie;
    const [first, last] = p.busRange;
    if (first > last) this.fail(['pcie', 'busRange'], `pcie.busRange [${first}, ${last}] is empty`);
    const need = BigInt(last - first + 1) * MiB1;
    if (p.ecam.size !== need) {
      this.fail(['pcie', 'ecam'], `pcie.ecam size ${hex(p.ecam.size)} does not match busRange [${first}, ${last}] (${hex(need)}: 1 MiB per bus)`);
    }
    if (p.mmio32.pciBase + p.mmio32.size > 1n << 32n) this.fail(['pcie', 'mmio32'], `pcie.mmio32 PCI window [${hex(p.mmio32.pciBase)}, ${hex(p.mmio32.pciBase + p.mmio32.size)}) is not below 4 GiB`);
    if (p.io.pciBase + p.io.size > 1n << 32n) this.fail(['pcie', 'io'], `pcie.io PCI window is not below 4 GiB`);
    for (const k of ['io', 'mmio32', 'mmio64'] as const) {
      if (p[k].pciBase % KiB4 !== 0n) this.fail(['pcie', k], `pcie.${k}.pciBase ${hex(p[k].pciBase)} is not 4 KiB aligned`);
    }
  }

  boot(): void {
    const l = this.layout;
    for (const [os, set] of Object.entries(l.boot) as unknown as [string, Record<string, unknown>][]) {
      const items: { name: string; path: YamlPath; w: Window }[] = [];
      for (const [k, v] of Object.entries(set)) {
        if (k === 'releaseAddrs') continue;
        const w = v as Window;
        const name = `boot.${os}.${k}`;
        const path = ['boot', os, k];
        this.window(name, path, w, KiB16, 'boot objects are placed on 16 KiB pages');
        this.inside(name, path, w, 'ram', l.ram);
        items.push({ name, path, w });
      }
      this.disjoint(items, `${os} boot objects`);
    }
    const img = l.boot.linux.image;
    if (img.base % MiB2 !== 0n) this.fail(['boot', 'linux', 'image'], `boot.linux.image at ${hex(img.base)} is not 2 MiB aligned (arm64 Image boot protocol)`);
    const fdt = l.boot.linux.fdt;
    if (fdt.size > MiB2) this.fail(['boot', 'linux', 'fdt'], `boot.linux.fdt is ${hex(fdt.size)} bytes; Linux accepts at most 2 MiB`);
    const st = l.boot.linux.spinTable;
    if (BigInt(l.cpus.length) * 8n > st.size) this.fail(['boot', 'linux', 'spinTable'], `boot.linux.spinTable holds ${st.size / 8n} release addresses, the layout has ${l.cpus.length} CPUs`);
  }
}

/** Throws FormatError("layout", ...) on the first inconsistency; `src` locates it in the file. */
export function checkLayout(layout: VmLayout, src: YamlSource | null): void {
  new Checker(layout, src).run();
}
