import { FormatError, UsageError } from '../../errors.js';
import { hex } from '../../util/hex.js';
import { parseAdt, serializeAdt, type AdtNode } from '../../dtb/adt.js';
import { adtProp, adtU32, findAdt } from '../../dtb/adt-views.js';
import { leU32s } from '../../dtb/adt-build.js';
import { adtCpuPhysId, setMemoryMapEntry } from '../../dtb/derive-adt.js';
import { applyEdits } from '../../dtb/edits.js';
import type { VmLayout, Window } from '../../dtb/layout-types.js';
import { commandOf, parseMachO, type MachO } from '../../macho/macho.js';
import { KERNEL_ENTRY_ID, findEntry, isFileset, openEntry } from '../../macho/fileset.js';
import { findDarwinVersion } from '../../macho/macho-darwin-version.js';
import type { Machine } from '../machine.js';
import { registerBootProtocol, type BootEntry, type BootInputs, type BootProtocol } from './protocol.js';
import { bootArgsLayoutFor, writeBootArgs, type BootArgsLayout, type BootArgsValues } from './xnu-boot-args.js';

// The XNU boot protocol, doing what iBoot does before it jumps to a kernel collection: every
// segment at physBase + (vmaddr - virtBase), the device tree, the ramdisk and boot_args where the
// layout puts them, /chosen/memory-map filled in (DeviceTree, BootArgs, RAMDisk, Kernel-<segment>),
// placeholders cleared, boot_args in the layout of the kernel's Darwin version; then the boot CPU
// starts at the kernel's entry (physical), MMU off, EL1, x0 = boot_args (physical).
// planXnuBoot() is pure (bytes in, a plan out); xnuBoot (registered as "xnu") loads a plan into the
// machine, and the VMM session starts vCPU 0 at the entry it returns.

export const XNU_PAGE = 0x4000n; // 16 KiB: XNU's page size on M1

export interface XnuBootInput {
  /** The raw MH_FILESET kernel collection. */
  kernel: Uint8Array;
  /** The Apple device tree (serialized), typically derived from the layout. */
  adt: Uint8Array;
  ramdisk?: Uint8Array;
  bootArgs: string;
  /** Darwin version of the kernel ("21.4.0"): picks the boot_args layout. */
  darwin: string;
  /** The machine layout, with the CPUs that will run (selectCpus). */
  layout: VmLayout;
}

export interface MemoryImage {
  addr: bigint;
  data: Uint8Array;
  /** Zero bytes that follow `data` (zerofill of a segment). */
  zero: bigint;
  what: string;
}

export interface XnuBootPlan {
  images: MemoryImage[];
  /** Physical entry point (LC_UNIXTHREAD pc, or LC_MAIN entryoff from the kernel's header). */
  entry: bigint;
  /** x0 at entry: the physical address of boot_args. */
  x0: bigint;
  bootArgs: BootArgsValues;
  bootArgsLayout: BootArgsLayout;
  /** The device tree as handed to the kernel. */
  adt: AdtNode;
  memoryMap: { name: string; paddr: bigint; size: bigint }[];
}

const alignDown = (v: bigint, a: bigint) => v - (v % a);
const alignUp = (v: bigint, a: bigint) => alignDown(v + a - 1n, a);

function fits(what: string, w: Window, size: bigint): void {
  if (size > w.size) throw new UsageError(`${what} is ${size} bytes; the layout reserves ${w.size} at ${hex(w.base)}`);
}

/** The kernel's entry, as a virtual address. */
function kernelEntry(kc: MachO): bigint {
  const e = findEntry(kc, KERNEL_ENTRY_ID);
  if (!e) throw new FormatError('kernel collection', 0n, `no LC_FILESET_ENTRY ${KERNEL_ENTRY_ID}`);
  const k = openEntry(kc, e);
  const thread = commandOf(k, 'thread');
  if (thread?.pc !== undefined) return thread.pc;
  const main = commandOf(k, 'entry_point');
  // LC_MAIN's entryoff is relative to the image's first byte, which is its mach header.
  if (main) return e.vmaddr + main.entryoff;
  throw new FormatError(`${KERNEL_ENTRY_ID}`, BigInt(e.fileoff), 'neither LC_UNIXTHREAD nor LC_MAIN gives an entry point');
}

/** Keep only the CPU nodes of the CPUs that run (iBoot leaves disabled cores out as well). */
function pruneCpus(root: AdtNode, layout: VmLayout): void {
  const cpus = findAdt(root, '/cpus')?.node;
  if (!cpus) return;
  const ids = new Set(layout.cpus.map(adtCpuPhysId));
  cpus.children = cpus.children.filter((n) => adtU32(n, 'reg') === undefined || ids.has(adtU32(n, 'reg')!));
  if (cpus.children.length !== layout.cpus.length) {
    throw new FormatError('ADT', 0n, `/cpus describes ${cpus.children.length} of the machine's ${layout.cpus.length} CPUs (derive the tree from the same layout)`);
  }
  const aic = findAdt(root, '/arm-io/aic')?.node;
  if (aic && adtProp(aic, '#main-cpus')) aic.properties.find((p) => p.name === '#main-cpus')!.value = leU32s([layout.cpus.length]);
}

/** Enough free MemoryMapReserved-N slots for the entries we are about to record. */
function ensureSlots(root: AdtNode, needed: number): void {
  const mm = findAdt(root, '/chosen/memory-map')?.node;
  if (!mm) throw new FormatError('ADT', 0n, 'no /chosen/memory-map');
  const slot = /^MemoryMapReserved-(\d+)$/;
  const free = mm.properties.filter((p) => slot.test(p.name) && p.value.length === 16 && p.value.every((b) => b === 0)).length;
  let next = Math.max(-1, ...mm.properties.map((p) => Number(slot.exec(p.name)?.[1] ?? -1))) + 1;
  for (let i = free; i < needed; i++) mm.properties.push({ name: `MemoryMapReserved-${next++}`, value: new Uint8Array(16) });
}

export function planXnuBoot(input: XnuBootInput): XnuBootPlan {
  const { layout } = input;
  const xnu = layout.boot.xnu;
  const baLayout = bootArgsLayoutFor(input.darwin);

  // ---- the collection, segment by segment
  const kc = parseMachO(input.kernel);
  if (!isFileset(kc)) throw new FormatError('kernel collection', 12n, 'not an MH_FILESET kernel collection');
  const segs = kc.segments.filter((s) => s.vmsize > 0n);
  if (segs.length === 0) throw new FormatError('kernel collection', 0n, 'no segments');
  const lowest = segs.reduce((a, s) => (s.vmaddr < a ? s.vmaddr : a), segs[0]!.vmaddr);
  const highest = segs.reduce((a, s) => (s.vmaddr + s.vmsize > a ? s.vmaddr + s.vmsize : a), 0n);
  const virtBase = alignDown(lowest, XNU_PAGE);
  const physBase = xnu.kernel.base;
  fits('the kernel collection', xnu.kernel, highest - virtBase);
  const toPhys = (va: bigint) => physBase + (va - virtBase);
  const images: MemoryImage[] = segs.map((s) => {
    if (s.fileoff + s.filesize > BigInt(input.kernel.length)) {
      throw new FormatError(`segment ${s.segname}`, BigInt(s.fileoff), 'file range is past the end of the collection');
    }
    const filesize = s.filesize < s.vmsize ? s.filesize : s.vmsize;
    return { addr: toPhys(s.vmaddr), data: input.kernel.subarray(Number(s.fileoff), Number(s.fileoff + filesize)), zero: s.vmsize - filesize, what: `kernel ${s.segname}` };
  });
  const entryVa = kernelEntry(kc);
  const exec = segs.find((s) => entryVa >= s.vmaddr && entryVa < s.vmaddr + s.vmsize && (s.initprot & 4) !== 0);
  if (!exec) throw new FormatError(KERNEL_ENTRY_ID, 0n, `entry point ${hex(entryVa)} is not in an executable segment`);

  // ---- the device tree, as iBoot hands it over
  const root = parseAdt(input.adt);
  // Placeholders iBoot would fill from its own knowledge (syscfg, nonces...) are removed: XNU does
  // not mask bit 31 of a property length.
  const cleared = applyEdits({ kind: 'adt', root }, [{ op: 'templates', path: '/', resolve: {}, unresolved: 'remove' }]);
  if (cleared.kind !== 'adt') throw new Error('unreachable');
  const adt = cleared.root;
  pruneCpus(adt, layout);
  // Kernel-<segment> entries: contiguous segments of the same name merge into one entry; a name
  // that comes back later (each kext has its own __TEXT...) gets a -2, -3... suffix, so entries
  // never overlap and names stay unique.
  const entries: { name: string; paddr: bigint; size: bigint }[] = [];
  const used = new Map<string, number>();
  let run: { seg: string; lo: bigint; hi: bigint } | null = null;
  const flush = () => {
    if (!run) return;
    const n = (used.get(run.seg) ?? 0) + 1;
    used.set(run.seg, n);
    entries.push({ name: `Kernel-${run.seg}${n > 1 ? `-${n}` : ''}`.slice(0, 31), paddr: toPhys(run.lo), size: run.hi - run.lo });
  };
  for (const s of [...segs].sort((a, b) => (a.vmaddr < b.vmaddr ? -1 : 1))) {
    if (run && run.seg === s.segname && run.hi === s.vmaddr) run.hi = s.vmaddr + s.vmsize;
    else {
      flush();
      run = { seg: s.segname, lo: s.vmaddr, hi: s.vmaddr + s.vmsize };
    }
  }
  flush();
  const bootArgsPa = xnu.bootArgs.base;
  fits('boot_args', xnu.bootArgs, BigInt(baLayout.size));
  entries.push({ name: 'BootArgs', paddr: bootArgsPa, size: BigInt(baLayout.size) });
  if (input.ramdisk) {
    fits('the ramdisk', xnu.ramdisk, BigInt(input.ramdisk.length));
    entries.push({ name: 'RAMDisk', paddr: xnu.ramdisk.base, size: BigInt(input.ramdisk.length) });
  }
  ensureSlots(adt, entries.length + 1);
  for (const e of entries) setMemoryMapEntry(adt, e.name, e.paddr, e.size);
  // Recording entries renames slots in place, so the tree's size is final now.
  setMemoryMapEntry(adt, 'DeviceTree', xnu.deviceTree.base, 0n);
  const adtSize = BigInt(serializeAdt(adt).length);
  fits('the device tree', xnu.deviceTree, adtSize);
  setMemoryMapEntry(adt, 'DeviceTree', xnu.deviceTree.base, adtSize);
  entries.push({ name: 'DeviceTree', paddr: xnu.deviceTree.base, size: adtSize });
  const adtBytes = serializeAdt(adt);
  if (BigInt(adtBytes.length) !== adtSize) throw new Error('internal: device tree size changed while recording it');

  // ---- boot_args
  const placed = [...images.map((i) => i.addr + BigInt(i.data.length) + i.zero), xnu.deviceTree.base + adtSize, bootArgsPa + BigInt(baLayout.size)];
  if (input.ramdisk) placed.push(xnu.ramdisk.base + BigInt(input.ramdisk.length));
  const top = placed.reduce((a, b) => (b > a ? b : a), 0n);
  const ramEnd = layout.ram.base + layout.ram.size;
  if (physBase < layout.ram.base || top > ramEnd) throw new UsageError(`the boot objects end at ${hex(top)}, past the end of RAM ${hex(ramEnd)}`);
  const bootArgs: BootArgsValues = {
    Revision: baLayout.revision,
    Version: 2,
    virtBase,
    physBase,
    memSize: ramEnd - physBase,
    topOfKernelData: alignUp(top, XNU_PAGE),
    videoBaseAddr: 0n, videoDisplay: 0n, videoRowBytes: 0n, videoWidth: 0n, videoHeight: 0n, videoDepth: 0n,
    machineType: 0,
    deviceTreeP: virtBase + (xnu.deviceTree.base - physBase),
    deviceTreeLength: Number(adtSize),
    CommandLine: input.bootArgs,
    bootFlags: 0n,
    memSizeActual: layout.ram.size,
  };
  images.push({ addr: xnu.deviceTree.base, data: adtBytes, zero: 0n, what: 'device tree' });
  if (input.ramdisk) images.push({ addr: xnu.ramdisk.base, data: input.ramdisk, zero: 0n, what: 'ramdisk' });
  images.push({ addr: bootArgsPa, data: writeBootArgs(baLayout, bootArgs), zero: 0n, what: 'boot_args' });
  return { images, entry: toPhys(entryVa), x0: bootArgsPa, bootArgs, bootArgsLayout: baLayout, adt, memoryMap: entries };
}

/** What loading needs from the machine (src/vmm/machine.ts provides it). */
export interface XnuLoadTarget {
  load(addr: bigint, data: Uint8Array): void;
}

/** Copy the plan into guest RAM (segments with their zerofill, device tree, ramdisk, boot_args). */
export function loadXnuPlan(m: XnuLoadTarget, plan: XnuBootPlan): void {
  for (const img of plan.images) {
    m.load(img.addr, img.data);
    if (img.zero > 0n) m.load(img.addr + BigInt(img.data.length), new Uint8Array(Number(img.zero)));
  }
}

/** The Darwin version: the manifest's, else the "Darwin Kernel Version X.Y.Z" string in the kernel. */
function darwinOf(inp: BootInputs): string {
  if (inp.darwin) return inp.darwin;
  const kc = parseMachO(inp.kernel);
  const e = findEntry(kc, KERNEL_ENTRY_ID);
  const v = findDarwinVersion(e ? openEntry(kc, e) : kc);
  if (!v) throw new UsageError('the kernel\'s Darwin version is unknown (no "Darwin Kernel Version" string; set "darwin" in manifest.json): it picks the boot_args layout');
  return `${v.major}.${v.minor}.${v.patch}`;
}

export const xnuBoot: BootProtocol = {
  name: 'xnu',
  load(m: Machine, inp: BootInputs): BootEntry {
    if (!inp.deviceTree) throw new UsageError('an XNU boot needs an Apple device tree (artifacts.devicetree)');
    const plan = planXnuBoot({ kernel: inp.kernel, adt: inp.deviceTree, ramdisk: inp.ramdisk, bootArgs: inp.bootArgs, darwin: darwinOf(inp), layout: m.layout });
    loadXnuPlan(m, plan);
    const placed = plan.memoryMap.map((e) => ({ what: e.name, base: e.paddr, size: e.size }));
    placed.push({ what: `entry (boot_args ${plan.bootArgsLayout.bootLineLength}-byte command line at x0)`, base: plan.entry, size: 0n });
    return { pc: plan.entry, x0: plan.x0, placed };
  },
};

registerBootProtocol(xnuBoot);
