import layoutSchema from '../../schemas/layout.schema.json' with { type: 'json' };
import { parseYamlSource, toU64, type YamlSource } from './layout-source.js';
import { checkSchema } from './schema-check.js';
import { checkLayout } from './layout-check.js';
import type {
  ClusterLayout, CoreType, CpuLayout, IrqDevice, PciWindow, PowerState, TimerIrq, TimerName, VmLayout, Window,
} from './layout-types.js';

export type * from './layout-types.js';
export { deviceMap } from './device-map.js';

// Loading the virtual machine layout (layouts/t8103-virt.yaml): YAML -> schema check -> typed
// VmLayout with bigint addresses -> consistency checks (overlaps, alignment, CPU numbering).
// Pure: the caller reads the file.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Raw = any;

const win = (r: Raw): Window => ({ base: toU64(r.base), size: toU64(r.size) });
const pciWin = (r: Raw): PciWindow => ({ base: toU64(r.base), pciBase: toU64(r.pciBase), size: toU64(r.size) });
const irqDev = (r: Raw): IrqDevice => ({ base: toU64(r.base), size: toU64(r.size), irq: Number(r.irq) });

/** Release address of each CPU in the spin table: 8 bytes per CPU. */
function releaseAddrs(spinTable: Window, cpus: number): bigint[] {
  return Array.from({ length: cpus }, (_, i) => spinTable.base + 8n * BigInt(i));
}

function build(raw: Raw, file?: string): VmLayout {
  const cpus: CpuLayout[] = [];
  const clusters: ClusterLayout[] = (raw.clusters as Raw[]).map((c) => {
    const type = c.type as CoreType;
    const ids: number[] = [];
    for (const p of c.cpus as Raw[]) {
      ids.push(cpus.length);
      cpus.push({ index: cpus.length, cluster: Number(c.id), core: Number(p.core), type, mpidr: toU64(p.mpidr), implReg: win(p.implReg) });
    }
    const cl: ClusterLayout = { id: Number(c.id), type, cpus: ids };
    if (c.accImplReg) cl.accImplReg = win(c.accImplReg);
    if (c.cpmImplReg) cl.cpmImplReg = win(c.cpmImplReg);
    return cl;
  });
  const aicBase = toU64(raw.aic.base);
  const pmgrBase = toU64(raw.pmgr.base);
  const powerStates: PowerState[] = (raw.pmgr.powerStates as Raw[]).map((p) => {
    const ps: PowerState = { name: String(p.name), offset: toU64(p.offset), address: pmgrBase + toU64(p.offset) };
    if (p.parent !== undefined) ps.parent = String(p.parent);
    return ps;
  });
  const spinTable = win(raw.boot.linux.spinTable);
  const layout: VmLayout = {
    name: String(raw.name),
    ram: win(raw.ram),
    clusters,
    cpus,
    aic: {
      base: aicBase,
      size: toU64(raw.aic.size),
      irqs: Number(raw.aic.irqs),
      fastIpi: Boolean(raw.aic.fastIpi),
      ...(raw.aic.timebase ? { timebase: { base: aicBase + toU64(raw.aic.timebase.offset), size: toU64(raw.aic.timebase.size) } } : {}),
    },
    timer: { interrupts: (raw.timer.interrupts as Raw[]).map((t): TimerIrq => ({ name: t.name as TimerName, fiq: Number(t.fiq) })) },
    uart0: irqDev(raw.uart0),
    pmgr: {
      base: pmgrBase,
      size: toU64(raw.pmgr.size),
      cpuStart: { base: pmgrBase + toU64(raw.pmgr.cpuStart.offset), size: toU64(raw.pmgr.cpuStart.size) },
      powerStates,
    },
    watchdog: irqDev(raw.watchdog),
    pcie: {
      ecam: win(raw.pcie.ecam),
      busRange: [Number(raw.pcie.busRange[0]), Number(raw.pcie.busRange[1])],
      io: pciWin(raw.pcie.io),
      mmio32: pciWin(raw.pcie.mmio32),
      mmio64: pciWin(raw.pcie.mmio64),
      intx: (raw.pcie.intx as Raw[]).map(Number) as [number, number, number, number],
    },
    boot: {
      xnu: {
        kernel: win(raw.boot.xnu.kernel),
        deviceTree: win(raw.boot.xnu.deviceTree),
        bootArgs: win(raw.boot.xnu.bootArgs),
        ramdisk: win(raw.boot.xnu.ramdisk),
      },
      linux: {
        spinTable,
        image: win(raw.boot.linux.image),
        fdt: win(raw.boot.linux.fdt),
        initrd: win(raw.boot.linux.initrd),
        releaseAddrs: releaseAddrs(spinTable, cpus.length),
      },
    },
  };
  if (file !== undefined) layout.file = file;
  return layout;
}

/**
 * Parse and validate a layout. Throws FormatError (structure "layout") naming the file, the byte
 * offset and line of the offending key, and both items for overlaps.
 */
export function loadLayout(yamlText: string, file?: string): VmLayout {
  const { src, value } = parseYamlSource('layout', yamlText, file);
  checkSchema('layout', layoutSchema, value, src);
  const layout = build(value, file);
  checkLayout(layout, src);
  return layout;
}

/** The layout file shipped with m1prep: <package root>/layouts/t8103-virt.yaml. */
export function defaultLayoutPath(): string {
  // This module runs from src/dtb (tests, tsx) or dist/src/dtb (the built CLI).
  let root = new URL('../../', import.meta.url);
  if (root.pathname.replace(/\/$/, '').endsWith('/dist')) root = new URL('../', root);
  return new URL('layouts/t8103-virt.yaml', root).pathname;
}

/** The same layout with another RAM size; boot objects must still fit (validated again). */
export function withRamSize(layout: VmLayout, size: bigint): VmLayout {
  const next: VmLayout = { ...layout, ram: { base: layout.ram.base, size } };
  checkLayout(next, null);
  return next;
}

/**
 * The same layout with only the first `count` CPUs (logical order); clusters left without CPUs are
 * dropped. The spin-table release addresses follow.
 */
export function selectCpus(layout: VmLayout, count: number): VmLayout {
  if (!Number.isInteger(count) || count < 1 || count > layout.cpus.length) {
    throw new RangeError(`CPU count ${count} is outside 1..${layout.cpus.length} (the layout's CPUs)`);
  }
  const cpus = layout.cpus.slice(0, count);
  const clusters = layout.clusters
    .map((c) => ({ ...c, cpus: c.cpus.filter((i) => i < count) }))
    .filter((c) => c.cpus.length > 0);
  const linux = { ...layout.boot.linux, releaseAddrs: releaseAddrs(layout.boot.linux.spinTable, count) };
  return { ...layout, cpus, clusters, boot: { ...layout.boot, linux } };
}

/** AIC IRQ of PCI slot `slot`, pin 1..4 (INTA..INTD): the standard swizzle over pcie.intx. */
export function pcieIntxIrq(layout: VmLayout, slot: number, pin: number): number {
  if (pin < 1 || pin > 4) throw new RangeError(`PCI interrupt pin ${pin} is not 1..4`);
  return layout.pcie.intx[(slot + pin - 1) % 4]!;
}

export type { YamlSource };
