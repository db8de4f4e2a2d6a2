import { FormatError, M1prepError } from '../errors.js';
import { hex } from '../util/hex.js';
import type { AdtNode } from './adt.js';
import { adtNodeName } from './adt.js';
import { adtCells, adtProp, adtRanges, adtU32, findAdt, u32s } from './adt-views.js';
import { cloneAdt, cString, leU32s, leU64s, setAdtProp } from './adt-build.js';
import { applyEdits } from './edits.js';
import type { CpuLayout, VmLayout, Window } from './layout-types.js';

// The ADT for XNU guests, derived from a real t8103 ADT (the Mac mini's j274) and the layout:
// the devices the VM provides keep their nodes with addresses and IRQs from the layout, /cpus
// holds exactly the layout's CPUs, everything the VM does not provide goes, placeholders are
// removed, and /chosen/memory-map has free slots for the boot loader (setMemoryMapEntry).

export interface DeriveAdtOptions {
  /** Extra /arm-io children (by name) to keep although the VM does not model them. */
  keep?: string[];
  /** Unmodelled /arm-io devices: removed (default) or kept with status = "disabled". */
  unmodelled?: 'remove' | 'disable';
  /** Free /chosen/memory-map slots the derived tree must have (default 8). */
  memoryMapSlots?: number;
}

/** /arm-io children the VM provides (the PCIe host node is added). */
const MODELLED = ['aic', 'aic-timebase', 'uart0', 'wdt', 'pmgr'];
export const PCIE_NODE = 'pcie-ecam';
/** Root children kept: no device or memory window of their own that the VM lacks. */
const ROOT_KEEP = ['chosen', 'options', 'cpus', 'aliases', 'memory', 'arm-io', 'defaults', 'product', 'iboot-syscfg', 'osenvironments', 'hibernate'];
const FREE_SLOT = /^MemoryMapReserved-(\d+)$/;

function fail(detail: string): never {
  throw new FormatError('ADT', 0n, detail);
}

function child(parent: AdtNode, name: string): AdtNode | undefined {
  return parent.children.find((c) => adtNodeName(c) === name);
}

function need(parent: AdtNode, name: string, where: string): AdtNode {
  return child(parent, name) ?? fail(`the base tree has no ${where}/${name}`);
}

/** ADT "reg" of a CPU: (Aff1 << 8) | Aff0, e.g. 0x101 for the second P core. */
export function adtCpuPhysId(cpu: CpuLayout): number {
  return Number((((cpu.mpidr >> 8n) & 0xffn) << 8n) | (cpu.mpidr & 0xffn));
}

function maxPhandle(root: AdtNode): number {
  let max = 0;
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    max = Math.max(max, adtU32(n, 'AAPL,phandle') ?? 0);
    stack.push(...n.children);
  }
  return max;
}

/** Maps physical windows into arm-io's child address space, adding identity ranges as needed. */
class ArmIoSpace {
  constructor(private readonly root: AdtNode, private readonly armIo: AdtNode) {
    const c = adtCells(armIo), up = adtCells(root);
    if (c.address !== 2 || c.size !== 2 || up.address !== 2) fail('/arm-io does not use 2 address and 2 size cells');
  }
  child(w: Window): bigint {
    const ranges = adtRanges(this.armIo, this.root);
    if (!adtProp(this.armIo, 'ranges')) return w.base;
    const r = ranges.find((e) => w.base >= e.parent && w.base + w.size <= e.parent + e.size);
    if (r) return w.base - r.parent + r.child;
    // Not covered: map it 1:1 so XNU can reach it.
    const p = adtProp(this.armIo, 'ranges')!;
    const add = leU64s([w.base, w.base, w.size]);
    const v = new Uint8Array(p.value.length + add.length);
    v.set(p.value);
    v.set(add, p.value.length);
    p.value = v;
    return w.base;
  }
  reg(windows: Window[]): Uint8Array {
    return leU64s(windows.flatMap((w) => [this.child(w), w.size]));
  }
}

function fixCpus(root: AdtNode, l: VmLayout, aic: AdtNode): void {
  const cpus = need(root, 'cpus', '');
  const base = cpus.children;
  if (base.length === 0) fail('the base tree has no CPU nodes under /cpus');
  let nextPhandle = maxPhandle(root) + 1;
  const used = new Set<AdtNode>();
  cpus.children = l.cpus.map((cpu) => {
    const phys = adtCpuPhysId(cpu);
    const exact = base.find((n) => adtU32(n, 'cluster-id') === cpu.cluster && adtU32(n, 'reg') === phys);
    const sameType = base.find((n) => adtProp(n, 'cluster-type') && cString(cpu.type).every((b, i) => adtProp(n, 'cluster-type')!.value[i] === b));
    const from = exact ?? sameType ?? base[0]!;
    const n = cloneAdt(from);
    if (used.has(from)) setAdtProp(n, 'AAPL,phandle', leU32s([nextPhandle++]));
    used.add(from);
    setAdtProp(n, 'name', cString(`cpu${cpu.index}`));
    setAdtProp(n, 'cpu-id', leU32s([cpu.index]));
    setAdtProp(n, 'reg', leU32s([phys]));
    setAdtProp(n, 'cluster-id', leU32s([cpu.cluster]));
    setAdtProp(n, 'cluster-type', cString(cpu.type));
    if (!exact && !sameType) {
      setAdtProp(n, 'compatible', new Uint8Array([...cString(cpu.type === 'P' ? 'apple,firestorm' : 'apple,icestorm'), ...cString('ARM,v8')]));
    }
    setAdtProp(n, 'cpu-impl-reg', leU64s([cpu.implReg.base, cpu.implReg.size]));
    const cl = l.clusters.find((c) => c.id === cpu.cluster);
    if (cl?.accImplReg) setAdtProp(n, 'acc-impl-reg', leU64s([cl.accImplReg.base, cl.accImplReg.size]));
    if (cl?.cpmImplReg) setAdtProp(n, 'cpm-impl-reg', leU64s([cl.cpmImplReg.base, cl.cpmImplReg.size]));
    return n;
  });
  // The AIC's per-CPU routing: keep only entries whose target CPUs all exist.
  setAdtProp(aic, '#main-cpus', leU32s([l.cpus.length]));
  const td = adtProp(aic, 'target-destinations');
  if (td) {
    const w = u32s(td.value);
    const keep: number[] = [];
    const gone = 0xff & ~((1 << l.cpus.length) - 1);
    for (let i = 0; i + 1 < w.length; i += 2) if ((w[i + 1]! & gone) === 0) keep.push(w[i]!, w[i + 1]!);
    td.value = leU32s(keep);
  }
}

function pcieNode(l: VmLayout, space: ArmIoSpace, aicPhandle: number, phandle: number): AdtNode {
  const p = l.pcie;
  // PCI "ranges": phys.hi flags (IO 0x01000000, MMIO32 0x02000000, MMIO64 0x03000000), the PCI
  // address, the CPU address (arm-io space) and the size, in the ADT's little-endian cells.
  const entry = (flags: number, w: { base: bigint; pciBase: bigint; size: bigint }) => [
    ...u32s(leU32s([flags])),
    ...u32s(leU64s([w.pciBase])),
    ...u32s(leU64s([space.child(w)])),
    ...u32s(leU64s([w.size])),
  ];
  return {
    properties: [
      { name: 'name', value: cString(PCIE_NODE) },
      { name: 'compatible', value: cString('pci-host-ecam-generic') },
      { name: 'device_type', value: cString('pci') },
      { name: 'reg', value: space.reg([p.ecam]) },
      { name: 'bus-range', value: leU32s(p.busRange) },
      { name: '#address-cells', value: leU32s([3]) },
      { name: '#size-cells', value: leU32s([2]) },
      { name: 'ranges', value: leU32s([...entry(0x0100_0000, p.io), ...entry(0x0200_0000, p.mmio32), ...entry(0x0300_0000, p.mmio64)]) },
      { name: 'interrupt-parent', value: leU32s([aicPhandle]) },
      { name: 'interrupts', value: leU32s(p.intx) },
      { name: 'AAPL,phandle', value: leU32s([phandle]) },
    ],
    children: [],
  };
}

function nodeExists(root: AdtNode, path: string): boolean {
  return findAdt(root, path) !== undefined;
}

/** Derive the XNU guest's ADT from a real t8103 ADT. Pure: `base` is not modified. */
export function deriveAdt(base: AdtNode, l: VmLayout, opts: DeriveAdtOptions = {}): AdtNode {
  const root = cloneAdt(base);
  const armIo = need(root, 'arm-io', '');
  const space = new ArmIoSpace(root, armIo);
  const aic = need(armIo, 'aic', '/arm-io');
  const aicPhandle = adtU32(aic, 'AAPL,phandle') ?? fail('/arm-io/aic has no AAPL,phandle');

  fixCpus(root, l, aic);

  const aicWindows: Window[] = [l.aic, ...(l.aic.timebase ? [l.aic.timebase] : [])];
  setAdtProp(aic, 'reg', space.reg(aicWindows));
  const tb = child(armIo, 'aic-timebase');
  if (tb && l.aic.timebase) setAdtProp(tb, 'reg', space.reg([l.aic.timebase]));

  const uart = need(armIo, 'uart0', '/arm-io');
  setAdtProp(uart, 'reg', space.reg([l.uart0]));
  setAdtProp(uart, 'interrupts', leU32s([l.uart0.irq]));

  const wdt = child(armIo, 'wdt');
  if (wdt) {
    // Extra wdt registers stay when they fall inside the layout's watchdog window.
    const armIoRanges = adtRanges(armIo, root);
    const toPhys = (a: bigint) => {
      const r = armIoRanges.find((e) => a >= e.child && a < e.child + e.size);
      return r ? a - r.child + r.parent : a;
    };
    const old = adtProp(wdt, 'reg') ? u32s(adtProp(wdt, 'reg')!.value) : [];
    const extra: Window[] = [];
    for (let i = 4; i + 3 < old.length; i += 4) {
      const phys = toPhys(BigInt(old[i]!) | (BigInt(old[i + 1]!) << 32n));
      const size = BigInt(old[i + 2]!) | (BigInt(old[i + 3]!) << 32n);
      if (phys >= l.watchdog.base && phys + size <= l.watchdog.base + l.watchdog.size) extra.push({ base: phys, size });
    }
    setAdtProp(wdt, 'reg', space.reg([l.watchdog, ...extra]));
    const irqs = adtProp(wdt, 'interrupts') ? u32s(adtProp(wdt, 'interrupts')!.value) : [0];
    irqs[0] = l.watchdog.irq;
    setAdtProp(wdt, 'interrupts', leU32s(irqs));
  }

  const pmgr = need(armIo, 'pmgr', '/arm-io');
  const pmgrReg = adtProp(pmgr, 'reg');
  // The first PMGR window is the modelled one; further entries (per-domain blocks the PMGR
  // driver indexes) pass through unchanged so their indices stay valid.
  const first = space.reg([l.pmgr]);
  if (pmgrReg && pmgrReg.value.length > 16) {
    const v = new Uint8Array(pmgrReg.value);
    v.set(first, 0);
    pmgrReg.value = v;
  } else setAdtProp(pmgr, 'reg', first);

  const keep = new Set([...MODELLED, PCIE_NODE, ...(opts.keep ?? [])]);
  if (opts.unmodelled === 'disable') {
    for (const c of armIo.children) if (!keep.has(adtNodeName(c))) setAdtProp(c, 'status', cString('disabled'));
  } else {
    armIo.children = armIo.children.filter((c) => keep.has(adtNodeName(c)));
  }
  armIo.children.push(pcieNode(l, space, aicPhandle, maxPhandle(root) + 1));

  root.children = root.children.filter((c) => ROOT_KEEP.includes(adtNodeName(c)));
  const aliases = child(root, 'aliases');
  if (aliases) {
    aliases.properties = aliases.properties.filter((p) => {
      if (p.name === 'name' || p.name === 'AAPL,phandle') return true;
      const target = new TextDecoder('latin1').decode(p.value).replace(/\0.*$/s, '');
      return !target.startsWith('/') || nodeExists(root, target);
    });
  }

  const chosen = need(root, 'chosen', '');
  setAdtProp(chosen, 'dram-base', leU64s([l.ram.base]));
  setAdtProp(chosen, 'dram-size', leU64s([l.ram.size]));
  const mm = need(chosen, 'memory-map', '/chosen');
  const slots = opts.memoryMapSlots ?? 8;
  const free = mm.properties.filter((p) => FREE_SLOT.test(p.name) && p.value.every((b) => b === 0));
  let next = Math.max(-1, ...mm.properties.map((p) => Number(FREE_SLOT.exec(p.name)?.[1] ?? -1))) + 1;
  for (let i = free.length; i < slots; i++) mm.properties.push({ name: `MemoryMapReserved-${next++}`, value: new Uint8Array(16) });

  // XNU does not mask bit 31 of a property length: no placeholder may survive.
  const out = applyEdits({ kind: 'adt', root }, [{ op: 'templates', path: '/', resolve: {}, unresolved: 'remove' }]);
  if (out.kind !== 'adt') throw new Error('unreachable');
  return out.root;
}

/**
 * Record a boot object in /chosen/memory-map, in place: an existing entry of that name is
 * overwritten, otherwise a free MemoryMapReserved-N slot is renamed, so the tree's size does not
 * change (the DeviceTree entry can describe the tree itself). Names: DeviceTree, BootArgs,
 * RAMDisk, TrustCache, Kernel-<segment>, ...
 */
export function setMemoryMapEntry(tree: AdtNode, name: string, paddr: bigint, size: bigint): void {
  if (name.length === 0 || name.length > 31) throw new M1prepError(`memory-map entry name "${name}" must be 1..31 characters`);
  const mm = findAdt(tree, '/chosen/memory-map')?.node;
  if (!mm) throw new M1prepError('the device tree has no /chosen/memory-map');
  const value = leU64s([paddr, size]);
  const existing = adtProp(mm, name);
  if (existing) {
    existing.value = value;
    return;
  }
  const slot = mm.properties.find((p) => FREE_SLOT.test(p.name) && p.value.length === 16 && p.value.every((b) => b === 0));
  if (!slot) throw new M1prepError(`no free /chosen/memory-map slot for ${name} at ${hex(paddr)} (derive the tree with more memoryMapSlots)`);
  slot.name = name;
  slot.value = value;
}
