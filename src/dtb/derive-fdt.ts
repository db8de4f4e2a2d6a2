import { FormatError } from '../errors.js';
import type { Fdt, FdtNode, FdtProperty } from './fdt.js';
import { fdtFilter, fdtProp, fdtStrings, fdtU32, findFdt } from './fdt-views.js';
import { pcieIntxIrq } from './layout.js';
import type { VmLayout, Window } from './layout-types.js';

// The FDT for Linux guests, derived from the upstream t8103 device tree (Linux's
// arch/arm64/boot/dts/apple/t8103-j274.dts, built by scripts/build-t8103-dtb.sh) and the layout.
// Kept, with addresses/IRQs from the layout: the AIC (apple,t8103-aic), the s5l UART behind the
// serial0 alias (apple,s5l-uart), the PMGR with exactly the layout's power-state nodes, the CPUs
// of the layout (spin-table, cpu-release-addr from the layout), the timer (only the layout's
// FIQs), memory, chosen. Added: a pci-host-ecam-generic node (INTx to AIC, no MSI). Removed:
// everything the VMM does not model (i2c, pinctrl, pcie, dart, nvme, mailbox, sart, wdt, PMU,
// framebuffer, the other UART).

export interface DeriveFdtOptions {
  /** /chosen/bootargs; default "earlycon console=ttySAC0,115200". */
  bootargs?: string;
  /** Size of the initrd at layout.boot.linux.initrd.base; without it no initrd is described. */
  initrdSize?: bigint;
  /** Keep the watchdog node (apple,t8103-wdt) with the layout's address; default false. */
  watchdog?: boolean;
  /** /model; default "m1prep virtual Apple M1 (t8103)". */
  model?: string;
}

// Linux dt-bindings/interrupt-controller/apple-aic.h and irq.h
const AIC_IRQ = 0;
const AIC_FIQ = 1;
const IRQ_TYPE_LEVEL_HIGH = 4;
const DEFAULT_BOOTARGS = 'earlycon console=ttySAC0,115200';

function fail(detail: string): never {
  throw new FormatError('FDT', 0n, detail);
}

const enc = new TextEncoder();
function str(s: string): Uint8Array {
  const b = enc.encode(s + '\0');
  return b;
}
function strs(list: string[]): Uint8Array {
  return enc.encode(list.map((s) => s + '\0').join(''));
}
function cells(values: (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => dv.setUint32(i * 4, Number(BigInt(v) & 0xffff_ffffn)));
  return out;
}
/** A 64-bit number as two big-endian cells. */
const c64 = (v: bigint) => [v >> 32n, v & 0xffff_ffffn];
const reg2x2 = (ws: Window[]) => cells(ws.flatMap((w) => [...c64(w.base), ...c64(w.size)]));

function set(node: FdtNode, name: string, value: Uint8Array): void {
  const p = fdtProp(node, name);
  if (p) p.value = value;
  else node.properties.push({ name, value });
}
function del(node: FdtNode, name: string): void {
  node.properties = node.properties.filter((p) => p.name !== name);
}
const unit = (name: string, base: bigint) => `${name.split('@')[0]}@${base.toString(16)}`;
const baseName = (n: FdtNode) => n.name.split('@')[0]!;

function clone(n: FdtNode): FdtNode {
  return { name: n.name, properties: n.properties.map((p): FdtProperty => ({ ...p })), children: n.children.map(clone) };
}

function phandleOf(n: FdtNode): number | undefined {
  return fdtU32(n, 'phandle') ?? fdtU32(n, 'linux,phandle');
}

function maxPhandle(root: FdtNode): number {
  return Math.max(0, ...fdtFilter(root, (n) => phandleOf(n) !== undefined).map((n) => phandleOf(n)!));
}

function fixCpus(root: FdtNode, l: VmLayout): void {
  const cpus = findFdt(root, '/cpus')?.node ?? fail('the base tree has no /cpus');
  const base = cpus.children.filter((c) => baseName(c) === 'cpu');
  if (base.length === 0) fail('the base tree has no CPU nodes');
  let nextPhandle = maxPhandle(root) + 1;
  const used = new Set<FdtNode>();
  cpus.children = l.cpus.map((cpu) => {
    const regOf = (n: FdtNode) => {
      const p = fdtProp(n, 'reg');
      if (!p) return undefined;
      const dv = new DataView(p.value.buffer, p.value.byteOffset, p.value.byteLength);
      return p.value.length === 8 ? dv.getBigUint64(0) : BigInt(dv.getUint32(0));
    };
    const compat = cpu.type === 'P' ? 'apple,firestorm' : 'apple,icestorm';
    const from = base.find((n) => regOf(n) === cpu.mpidr) ?? base.find((n) => fdtStrings(n, 'compatible').includes(compat)) ?? base[0]!;
    const n = clone(from);
    if (used.has(from) && phandleOf(n) !== undefined) set(n, 'phandle', cells([nextPhandle++]));
    used.add(from);
    n.name = `cpu@${cpu.mpidr.toString(16)}`;
    set(n, 'compatible', str(compat));
    set(n, 'device_type', str('cpu'));
    set(n, 'reg', cells(c64(cpu.mpidr)));
    set(n, 'enable-method', str('spin-table'));
    set(n, 'cpu-release-addr', cells(c64(l.boot.linux.releaseAddrs[cpu.index]!)));
    return n;
  });
  set(cpus, '#address-cells', cells([2]));
  set(cpus, '#size-cells', cells([0]));
}

function fixTimer(root: FdtNode, l: VmLayout, aicPhandle: number): void {
  const timer = root.children.find((c) => fdtStrings(c, 'compatible').includes('arm,armv8-timer'));
  const t = timer ?? { name: 'timer', properties: [{ name: 'compatible', value: str('arm,armv8-timer') }], children: [] };
  if (!timer) root.children.push(t);
  set(t, 'interrupt-parent', cells([aicPhandle]));
  set(t, 'interrupt-names', strs(l.timer.interrupts.map((i) => i.name)));
  set(t, 'interrupts', cells(l.timer.interrupts.flatMap((i) => [AIC_FIQ, i.fiq, IRQ_TYPE_LEVEL_HIGH])));
}

function pcieHost(l: VmLayout, aicPhandle: number): FdtNode {
  const p = l.pcie;
  const range = (flags: number, w: { base: bigint; pciBase: bigint; size: bigint }) => [flags, ...c64(w.pciBase), ...c64(w.base), ...c64(w.size)];
  const map: (number | bigint)[] = [];
  for (let slot = 0; slot < 4; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      // child unit address (3 cells: devfn in phys.hi), pin, then the AIC specifier (AIC has 0 address cells)
      map.push(slot << 11, 0, 0, pin, aicPhandle, AIC_IRQ, pcieIntxIrq(l, slot, pin), IRQ_TYPE_LEVEL_HIGH);
    }
  }
  return {
    name: unit('pcie', p.ecam.base),
    properties: [
      { name: 'compatible', value: str('pci-host-ecam-generic') },
      { name: 'device_type', value: str('pci') },
      { name: 'reg', value: reg2x2([p.ecam]) },
      { name: 'bus-range', value: cells(p.busRange) },
      { name: '#address-cells', value: cells([3]) },
      { name: '#size-cells', value: cells([2]) },
      { name: '#interrupt-cells', value: cells([1]) },
      { name: 'ranges', value: cells([...range(0x0100_0000, p.io), ...range(0x0200_0000, p.mmio32), ...range(0x0300_0000, p.mmio64)]) },
      { name: 'interrupt-map-mask', value: cells([0x1800, 0, 0, 7]) },
      { name: 'interrupt-map', value: cells(map) },
      { name: 'dma-coherent', value: new Uint8Array(0) },
    ],
    children: [],
  };
}

/** Derive the Linux guest's FDT. Pure: `base` is not modified. */
export function deriveFdt(base: Fdt, l: VmLayout, opts: DeriveFdtOptions = {}): Fdt {
  const root = clone(base.root);
  const soc = root.children.find((c) => baseName(c) === 'soc') ?? fail('the base tree has no /soc');
  const aic = soc.children.find((c) => fdtStrings(c, 'compatible').includes('apple,aic')) ?? fail('the base tree has no apple,aic node');
  const aicPhandle = phandleOf(aic) ?? fail('the AIC node has no phandle');

  // The console UART is the one the serial0 alias names.
  const aliases = root.children.find((c) => c.name === 'aliases');
  const serialPath = aliases ? fdtStrings(aliases, 'serial0')[0] : undefined;
  const uart = (serialPath && findFdt(root, serialPath)?.node) || soc.children.find((c) => fdtStrings(c, 'compatible').includes('apple,s5l-uart')) || fail('the base tree has no apple,s5l-uart node');
  const labels = new Set(l.pmgr.powerStates.map((p) => p.name));
  const pmgr = soc.children.find((c) => fdtStrings(c, 'compatible').includes('apple,pmgr') && c.children.some((k) => labels.has(fdtStrings(k, 'label')[0] ?? '')))
    ?? fail('the base tree has no apple,pmgr node with the layout\'s power states');
  const wdt = opts.watchdog ? soc.children.find((c) => fdtStrings(c, 'compatible').includes('apple,wdt')) : undefined;

  // AIC
  aic.name = unit(aic.name, l.aic.base);
  set(aic, 'reg', reg2x2([l.aic]));
  set(aic, '#address-cells', cells([0]));
  aic.children = aic.children.filter((c) => c.name !== 'affinities'); // PMU affinities: no PMU modelled

  // UART
  uart.name = unit(uart.name, l.uart0.base);
  set(uart, 'reg', reg2x2([l.uart0]));
  set(uart, 'interrupts', cells([AIC_IRQ, l.uart0.irq, IRQ_TYPE_LEVEL_HIGH]));
  set(uart, 'status', str('okay'));

  // PMGR: only the power states the layout lists, at the layout's offsets.
  pmgr.name = unit(pmgr.name, l.pmgr.base);
  set(pmgr, 'reg', reg2x2([l.pmgr]));
  const byLabel = new Map(pmgr.children.map((c) => [fdtStrings(c, 'label')[0] ?? '', c]));
  pmgr.children = l.pmgr.powerStates.map((ps) => {
    const n = byLabel.get(ps.name) ?? fail(`the base PMGR has no power state labelled ${ps.name}`);
    n.name = `power-controller@${ps.offset.toString(16)}`;
    set(n, 'reg', cells([ps.offset, 4]));
    return n;
  });

  if (wdt) {
    wdt.name = unit(wdt.name, l.watchdog.base);
    set(wdt, 'reg', reg2x2([l.watchdog]));
    set(wdt, 'interrupts', cells([AIC_IRQ, l.watchdog.irq, IRQ_TYPE_LEVEL_HIGH]));
  }
  soc.children = [aic, uart, pmgr, ...(wdt ? [wdt] : []), pcieHost(l, aicPhandle)].sort((a, b) => (a.name < b.name ? -1 : 1));

  fixCpus(root, l);
  fixTimer(root, l, aicPhandle);

  // Memory
  const mem = root.children.find((c) => fdtStrings(c, 'device_type')[0] === 'memory') ?? { name: 'memory', properties: [{ name: 'device_type', value: str('memory') }], children: [] };
  mem.name = unit('memory', l.ram.base);
  set(mem, 'reg', reg2x2([l.ram]));

  // Chosen
  const chosen = root.children.find((c) => c.name === 'chosen') ?? { name: 'chosen', properties: [], children: [] };
  chosen.children = [];
  set(chosen, 'bootargs', str(opts.bootargs ?? DEFAULT_BOOTARGS));
  set(chosen, 'stdout-path', str('serial0'));
  del(chosen, 'linux,initrd-start');
  del(chosen, 'linux,initrd-end');
  if (opts.initrdSize !== undefined) {
    const start = l.boot.linux.initrd.base;
    if (opts.initrdSize > l.boot.linux.initrd.size) fail(`the initrd (${opts.initrdSize} bytes) is larger than the layout's initrd window`);
    set(chosen, 'linux,initrd-start', cells(c64(start)));
    set(chosen, 'linux,initrd-end', cells(c64(start + opts.initrdSize)));
  }

  // Root: only the nodes kept above; aliases that still resolve.
  const timer = root.children.find((c) => fdtStrings(c, 'compatible').includes('arm,armv8-timer'))!;
  const clocks = root.children.filter((c) => fdtStrings(c, 'compatible').includes('fixed-clock'));
  const cpus = findFdt(root, '/cpus')!.node;
  const newAliases: FdtNode = { name: 'aliases', properties: [{ name: 'serial0', value: str(`/${soc.name}/${uart.name}`) }], children: [] };
  root.children = [newAliases, chosen, cpus, timer, ...clocks, soc, mem];
  set(root, 'model', str(opts.model ?? 'm1prep virtual Apple M1 (t8103)'));

  // The spin table must not be handed to the page allocator.
  const memReserve = [...base.memReserve.filter((r) => r.address !== l.boot.linux.spinTable.base), { address: l.boot.linux.spinTable.base, size: l.boot.linux.spinTable.size }];
  return { root, memReserve, bootCpuId: Number(l.cpus[0]!.mpidr) };
}
