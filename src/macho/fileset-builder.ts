import { createHash } from 'node:crypto';
import { FormatError, UsageError } from '../errors.js';
import { ByteSink, alignUpBig, setU64 } from './macho-bytes.js';
import {
  ARM_THREAD_STATE64, CPU_TYPE_ARM64, FILETYPE_NAMES, LC_UNIXTHREAD, LC_CODE_SIGNATURE, LC_DYLD_CHAINED_FIXUPS, LC_DYLD_CHAINED_FIXUPS as LC_CHAINED,
  LC_FILESET_ENTRY, LC_SEGMENT_64, LC_UUID, MACH_HEADER_64_SIZE, MH_BUNDLE, MH_DYLIB, MH_EXECUTE, MH_FILESET,
  MH_KEXT_BUNDLE, MH_MAGIC_64, MH_PIE,
} from './macho-constants.js';
import { commandOf, headerVmaddr, parseMachO, type MachO } from './macho.js';
import { KERNEL_ENTRY_ID } from './fileset.js';
import type { Segment64 } from './load-commands.js';
import { headerRoom, isLinkeditSegment, isPageZero, placeLinkedit, relayoutCommands, writeHeaderAndCommands } from './macho-relayout.js';
import { imageFixups } from './fixups-image.js';
import { DYLD_CHAINED_PTR_64_KERNEL_CACHE, DYLD_CHAINED_IMPORT, type PointerAuth } from './fixups.js';
import { EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE, EXPORT_SYMBOL_FLAGS_KIND_MASK, EXPORT_SYMBOL_FLAGS_REEXPORT, exportsOf } from './exports-trie.js';
import { isDefinedExternal, parseSymtab } from './symtab.js';
import { isDict, parsePlist, serializePlist, type PlistDict, type PlistValue } from './plist.js';

// Builds an MH_FILESET kernel collection like Apple's boot kernel collection from a kernel and
// kexts as clang + ld64.lld link them: every image keeps its internal layout (PC-relative code
// stays valid) and moves as a whole to a 16 KiB-aligned place; file offset == address - base, so
// the file is also the memory image. Imports are bound at build time; every pointer that needs
// sliding becomes a DYLD_CHAINED_PTR_64_KERNEL_CACHE entry (mach-o/fixup-chains.h: stride 4,
// target = offset from the collection's base) in one top-level LC_DYLD_CHAINED_FIXUPS, which is
// what XNU walks to slide itself at boot.

export interface FilesetKextInput {
  id: string;
  macho: Uint8Array;
  /** The kext's Info.plist (XML); its keys go into the collection's __PRELINK_INFO. */
  infoPlist?: string;
  /** CFBundleVersion when there is no Info.plist (or it lacks one). */
  version?: string;
}

export interface BuildFilesetOptions {
  kernel: Uint8Array;
  kexts: FilesetKextInput[];
  baseVmaddr?: bigint;
  pageSize?: number;
}

export const DEFAULT_KC_BASE = 0xfffffe0007004000n;

/** dyld_stub_binder is only reached through lazy stubs, whose pointers we bind now: it is never called. */
const UNUSED_LAZY_BINDER = 'dyld_stub_binder';

interface Image {
  id: string;
  m: MachO;
  kept: Segment64[];
  minVm: bigint;
  maxVm: bigint;
  delta: bigint;
  headerVm: bigint;
  plist?: PlistDict;
  version?: string;
}

const S = 'fileset builder';

export function buildFileset(opts: BuildFilesetOptions): Uint8Array {
  const base = opts.baseVmaddr ?? DEFAULT_KC_BASE;
  const page = BigInt(opts.pageSize ?? 16384);
  // Chain links are 12 bits of 4-byte strides, so a chain page cannot exceed 16 KiB.
  if (page !== 16384n && page !== 4096n) throw new UsageError(`pageSize ${page}: use 16384 (arm64) or 4096`);
  if (base % page !== 0n) throw new UsageError(`baseVmaddr 0x${base.toString(16)} is not page aligned`);

  const images: Image[] = [openImage(KERNEL_ENTRY_ID, opts.kernel, [MH_EXECUTE])];
  const seen = new Set([KERNEL_ENTRY_ID]);
  for (const k of opts.kexts) {
    if (seen.has(k.id)) throw new UsageError(`kext id ${k.id} is given twice`);
    seen.add(k.id);
    const img = openImage(k.id, k.macho, [MH_DYLIB, MH_BUNDLE, MH_KEXT_BUNDLE]);
    if (img.m.header.cputype !== images[0]!.m.header.cputype) throw new FormatError(`kext ${k.id}`, 4n, 'CPU type differs from the kernel');
    if (k.infoPlist !== undefined) {
      const p = parsePlist(k.infoPlist);
      if (!isDict(p)) throw new FormatError(`kext ${k.id} Info.plist`, 0n, 'top-level value is not a <dict>');
      img.plist = p;
    }
    img.version = k.version;
    images.push(img);
  }

  // ---- top-level layout: header, every image's segments, __PRELINK_INFO, __LINKEDIT
  const kernel = images[0]!.m;
  const buildVersion = commandOf(kernel, 'build_version');
  // __TEXT (this header) + each image's segments + __PRELINK_INFO + __LINKEDIT
  const topSegCount = 1 + images.reduce((n, i) => n + i.kept.length, 0) + 2;
  const entrySizes = images.map((i) => align8(32 + Buffer.byteLength(i.id) + 1));
  const topCmdsSize = topSegCount * 72 + 80 /* __PRELINK_INFO,__info */ + 16 /* LC_DYLD_CHAINED_FIXUPS */ + 24 /* LC_UUID */ +
    (buildVersion ? buildVersion.cmdsize : 0) + entrySizes.reduce((a, b) => a + b, 0);
  let cursor = alignUpBig(BigInt(MACH_HEADER_64_SIZE + topCmdsSize), page);
  const headerSegSize = cursor;
  for (const img of images) {
    const newMin = alignUpBig(cursor, page) + (img.minVm % page);
    img.delta = base + newMin - img.minVm;
    cursor = alignUpBig(newMin + (img.maxVm - img.minVm), page);
  }
  if (cursor >= 1n << 30n) throw new FormatError(S, 0n, 'collection larger than the 1 GiB a DYLD_CHAINED_PTR_64_KERNEL_CACHE target can reach');

  // ---- symbols every image exports, at their new addresses (flat namespace: first definition wins)
  const symbols = new Map<string, { addr: bigint; absolute: boolean }>();
  for (const img of images) {
    for (const [name, v] of exportedSymbols(img)) if (!symbols.has(name)) symbols.set(name, v);
  }

  // ---- fixups: new slot address -> new target (+ auth)
  const slots = new Map<bigint, { target: bigint; auth?: PointerAuth } | { raw: bigint }>();
  for (const img of images) {
    const fx = imageFixups(img.m);
    for (const r of fx.rebases) {
      if (r.target < img.minVm || r.target > img.maxVm) {
        throw new FormatError(`${img.id} rebase`, r.address, `pointer at 0x${r.address.toString(16)} targets 0x${r.target.toString(16)}, outside the image`);
      }
      slots.set(r.address + img.delta, { target: r.target + img.delta, auth: r.auth });
    }
    for (const bd of fx.binds) {
      const at = bd.address + img.delta;
      if (bd.symbol === UNUSED_LAZY_BINDER) { slots.set(at, { raw: 0n }); continue; }
      const sym = symbols.get(bd.symbol);
      if (!sym) {
        if (bd.weakImport) { slots.set(at, { raw: 0n }); continue; }
        throw new FormatError(`kext ${img.id}`, bd.address, `undefined symbol ${bd.symbol} (not exported by the kernel or any kext in the collection)`);
      }
      if (sym.absolute) slots.set(at, { raw: sym.addr + bd.addend });
      else slots.set(at, { target: sym.addr + bd.addend, auth: bd.auth });
    }
  }

  // ---- __PRELINK_INFO
  const prelinkText = new TextEncoder().encode(serializePlist(prelinkInfo(images), { iokit: true }));
  const prelinkVm = base + cursor;
  const prelinkSize = alignUpBig(BigInt(prelinkText.length + 1), page);
  cursor += prelinkSize;

  // ---- top-level segments list (needed for the chain starts)
  type TopSeg = { segname: string; vmaddr: bigint; vmsize: bigint; fileoff: bigint; filesize: bigint; maxprot: number; initprot: number };
  const topSegs: TopSeg[] = [{ segname: '__TEXT', vmaddr: base, vmsize: headerSegSize, fileoff: 0n, filesize: headerSegSize, maxprot: 1, initprot: 1 }];
  for (const img of images) {
    for (const s of img.kept) {
      const va = s.vmaddr + img.delta;
      topSegs.push({ segname: s.segname, vmaddr: va, vmsize: s.vmsize, fileoff: va - base, filesize: s.filesize, maxprot: s.maxprot, initprot: s.initprot });
    }
  }
  topSegs.push({ segname: '__PRELINK_INFO', vmaddr: prelinkVm, vmsize: prelinkSize, fileoff: prelinkVm - base, filesize: prelinkSize, maxprot: 3, initprot: 3 });

  // ---- __LINKEDIT: chained fixups first, then each image's symbols and blobs
  const linkeditOff = cursor;
  const linkeditTop: TopSeg = { segname: '__LINKEDIT', vmaddr: base + linkeditOff, vmsize: 0n, fileoff: linkeditOff, filesize: 0n, maxprot: 1, initprot: 1 };
  topSegs.push(linkeditTop);
  const le = new ByteSink();
  const chained = chainedFixupsBlob(topSegs, slots, base, Number(page));
  le.bytes(chained);
  const dropCmds = new Set([LC_CODE_SIGNATURE, LC_DYLD_CHAINED_FIXUPS]);
  const placements = images.map((img) => placeLinkedit(img.m, le, img.delta, { dropCmds, clearDyldInfoFixups: true }));
  le.align(8);
  const linkeditSize = alignUpBig(BigInt(le.length), page);
  const total = linkeditOff + linkeditSize;
  linkeditTop.vmsize = linkeditTop.filesize = linkeditSize;
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(S, 0n, 'collection too large');

  const out = new Uint8Array(Number(total));
  // Segment contents.
  for (const img of images) {
    for (const s of img.kept) {
      if (s.filesize === 0n) continue;
      const to = Number(s.vmaddr + img.delta - base);
      out.set(img.m.bytes.subarray(Number(s.fileoff), Number(s.fileoff + s.filesize)), to);
    }
  }
  out.set(prelinkText, Number(prelinkVm - base));
  out.set(le.result(), Number(linkeditOff));

  // Pointer slots: chain entries (target, auth, next) written by the chain encoder.
  writeChainEntries(out, topSegs, slots, base, Number(page));

  // Entry headers, relocated.
  const leSeg = { vmaddr: base + linkeditOff, fileoff: linkeditOff, size: linkeditSize };
  images.forEach((img, i) => {
    const { cmds, ncmds } = relayoutCommands(img.m, placements[i]!, {
      delta: img.delta,
      segmentFileoff: (s) => s.vmaddr + img.delta - base,
      linkedit: leSeg,
      dropCmds,
      dropSegment: isPageZero,
      clearDyldInfoFixups: true,
    });
    const room = headerRoom(img.m);
    const withThread = i === 0 ? mainToUnixThread(img, cmds, room) : undefined;
    writeHeaderAndCommands(out, Number(img.headerVm + img.delta - base), img.m, withThread ?? cmds, ncmds, room);
  });

  // Top-level header.
  const top = new ByteSink();
  for (const s of topSegs) {
    const isPrelink = s.segname === '__PRELINK_INFO';
    top.u32(LC_SEGMENT_64).u32(72 + (isPrelink ? 80 : 0)).fixed(s.segname, 16).u64(s.vmaddr).u64(s.vmsize).u64(s.fileoff).u64(s.filesize)
      .u32(s.maxprot).u32(s.initprot).u32(isPrelink ? 1 : 0).u32(0);
    if (isPrelink) {
      top.fixed('__info', 16).fixed('__PRELINK_INFO', 16).u64(s.vmaddr).u64(BigInt(prelinkText.length)).u32(Number(s.fileoff))
        .u32(0).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0);
    }
  }
  top.u32(LC_CHAINED).u32(16).u32(Number(linkeditOff)).u32(chained.length);
  const uuid = createHash('sha256').update(`${base}:${page}`);
  for (const img of images) uuid.update(img.id).update(img.m.bytes);
  top.u32(LC_UUID).u32(24).bytes(uuid.digest().subarray(0, 16));
  if (buildVersion) top.bytes(buildVersion.raw);
  images.forEach((img, i) => {
    const start = top.length;
    top.u32(LC_FILESET_ENTRY).u32(entrySizes[i]!).u64(img.headerVm + img.delta).u64(img.headerVm + img.delta - base).u32(32).u32(0).cstr(img.id);
    top.zeros(start + entrySizes[i]! - top.length);
  });
  const cmds = top.result();
  if (cmds.length !== topCmdsSize) throw new Error(`internal: top-level commands are ${cmds.length} bytes, planned ${topCmdsSize}`);
  const hdr = new ByteSink().u32(MH_MAGIC_64).u32(kernel.header.cputype).u32(kernel.header.cpusubtype).u32(MH_FILESET)
    .u32(topSegs.length + 2 + (buildVersion ? 1 : 0) + images.length).u32(cmds.length).u32(0).u32(0).result();
  out.set(hdr, 0);
  out.set(cmds, MACH_HEADER_64_SIZE);
  // The result must read back with our own parser: a cheap guard against layout mistakes.
  parseMachO(out);
  return out;
}

/**
 * XNU's loaders (iBoot, and m1prep's VMM) start the kernel at its LC_UNIXTHREAD pc. A kernel linked
 * as an ordinary executable has LC_MAIN instead; replace it with an ARM_THREAD_STATE64
 * LC_UNIXTHREAD (mach/arm/thread_status.h) when the header has room (link with -headerpad 0x1000),
 * else keep LC_MAIN (its entry is still header + entryoff).
 */
function mainToUnixThread(img: Image, cmds: Uint8Array, room: number): Uint8Array | undefined {
  const main = commandOf(img.m, 'entry_point');
  if (!main || img.m.header.cputype !== CPU_TYPE_ARM64) return undefined;
  const THREAD_CMDSIZE = 16 + ARM_THREAD_STATE64_COUNT * 4;
  if (MACH_HEADER_64_SIZE + cmds.length - main.cmdsize + THREAD_CMDSIZE > room) return undefined;
  let at = 0;
  while (at < cmds.length && !(cmds[at] === 0x28 && cmds[at + 3] === 0x80)) at += cmds[at + 4]! | (cmds[at + 5]! << 8);
  const thread = new ByteSink().u32(LC_UNIXTHREAD).u32(THREAD_CMDSIZE).u32(ARM_THREAD_STATE64).u32(ARM_THREAD_STATE64_COUNT)
    .zeros(32 * 8).u64(img.headerVm + img.delta + main.entryoff).zeros(8).result();
  const out = new Uint8Array(cmds.length - main.cmdsize + THREAD_CMDSIZE);
  out.set(cmds.subarray(0, at), 0);
  out.set(thread, at);
  out.set(cmds.subarray(at + main.cmdsize), at + THREAD_CMDSIZE);
  return out;
}

/** arm_thread_state64_t in 32-bit words (mach/arm/thread_status.h ARM_THREAD_STATE64_COUNT). */
const ARM_THREAD_STATE64_COUNT = 68;

function align8(n: number): number {
  return (n + 7) & ~7;
}

function openImage(id: string, bytes: Uint8Array, filetypes: number[]): Image {
  let m: MachO;
  try {
    m = parseMachO(bytes);
  } catch (e) {
    if (e instanceof FormatError) throw new FormatError(`${id}: ${e.structure}`, e.offset, e.detail);
    throw e;
  }
  if (!filetypes.includes(m.header.filetype)) {
    throw new FormatError(`${id} mach_header_64`, 12n, `filetype ${FILETYPE_NAMES[m.header.filetype] ?? m.header.filetype} cannot go in a collection here (expected ${filetypes.map((f) => FILETYPE_NAMES[f]).join(' or ')})`);
  }
  if (m.header.filetype === MH_EXECUTE && !(m.header.flags & MH_PIE)) {
    // Without MH_PIE the linker wrote no rebase information: absolute pointers inside could not follow the move.
    throw new FormatError(`${id} mach_header_64`, 24n, 'not position-independent (linked with -no_pie): its pointers cannot be moved into a collection');
  }
  const d = commandOf(m, 'dysymtab');
  if (d && (d.nextrel > 0 || d.nlocrel > 0)) throw new FormatError(`${id} LC_DYSYMTAB`, BigInt(d.offset), 'classic relocation entries are not supported (link with ld64.lld)');
  const kept = m.segments.filter((s) => !isPageZero(s) && !isLinkeditSegment(s) && s.vmsize > 0n);
  if (kept.length === 0) throw new FormatError(`${id}`, 0n, 'image has no segments');
  const headerVm = headerVmaddr(m);
  if (headerVm === undefined) throw new FormatError(`${id}`, 0n, 'no segment maps the mach header');
  const minVm = kept.reduce((a, s) => (s.vmaddr < a ? s.vmaddr : a), kept[0]!.vmaddr);
  const maxVm = kept.reduce((a, s) => (s.vmaddr + s.vmsize > a ? s.vmaddr + s.vmsize : a), 0n);
  return { id, m, kept, minVm, maxVm, delta: 0n, headerVm };
}

function exportedSymbols(img: Image): Map<string, { addr: bigint; absolute: boolean }> {
  const out = new Map<string, { addr: bigint; absolute: boolean }>();
  const ex = exportsOf(img.m);
  if (ex.length > 0) {
    for (const e of ex) {
      if (e.flags & EXPORT_SYMBOL_FLAGS_REEXPORT || e.address === undefined) continue;
      const absolute = (e.flags & EXPORT_SYMBOL_FLAGS_KIND_MASK) === EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE;
      out.set(e.name, absolute ? { addr: e.address, absolute } : { addr: img.headerVm + e.address + img.delta, absolute });
    }
    return out;
  }
  for (const s of parseSymtab(img.m)) if (isDefinedExternal(s)) out.set(s.name, { addr: s.n_value + img.delta, absolute: false });
  return out;
}

function prelinkInfo(images: Image[]): PlistDict {
  const list: PlistValue[] = [];
  for (const img of images.slice(1)) {
    const d: PlistDict = new Map(img.plist ?? []);
    d.set('CFBundleIdentifier', img.id);
    if (img.version !== undefined) d.set('CFBundleVersion', img.version);
    const load = img.minVm + img.delta;
    d.set('_PrelinkExecutableLoadAddr', load);
    d.set('_PrelinkExecutableSourceAddr', load);
    d.set('_PrelinkExecutableSize', img.maxVm - img.minVm);
    list.push(d);
  }
  return new Map<string, PlistValue>([['_PrelinkInfoDictionary', list]]);
}

type Slot = { target: bigint; auth?: PointerAuth } | { raw: bigint };
type SegRange = { vmaddr: bigint; vmsize: bigint };

/** Slots that need a chain entry, grouped by top-level segment index and page, sorted. */
function chainPages(segs: SegRange[], slots: Map<bigint, Slot>, page: number): Map<number, Map<number, bigint[]>> {
  const bySeg = new Map<number, Map<number, bigint[]>>();
  const sorted = [...slots.entries()].filter(([, v]) => 'target' in v).map(([k]) => k).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let si = 0;
  for (const a of sorted) {
    while (si < segs.length && !(a >= segs[si]!.vmaddr && a < segs[si]!.vmaddr + segs[si]!.vmsize)) si++;
    if (si >= segs.length) {
      si = segs.findIndex((s) => a >= s.vmaddr && a < s.vmaddr + s.vmsize);
      if (si < 0) throw new FormatError(S, a, `fixup at 0x${a.toString(16)} is in no segment`);
    }
    const off = a - segs[si]!.vmaddr;
    const p = Number(off / BigInt(page));
    let pages = bySeg.get(si);
    if (!pages) bySeg.set(si, (pages = new Map()));
    let list = pages.get(p);
    if (!list) pages.set(p, (list = []));
    list.push(a);
  }
  return bySeg;
}

/** The LC_DYLD_CHAINED_FIXUPS payload: header, starts in image, starts per segment, no imports. */
function chainedFixupsBlob(segs: { vmaddr: bigint; vmsize: bigint }[], slots: Map<bigint, Slot>, base: bigint, page: number): Uint8Array {
  const pages = chainPages(segs, slots, page);
  const b = new ByteSink();
  const startsOffset = 32;
  b.u32(0).u32(startsOffset).u32(0).u32(0).u32(0).u32(DYLD_CHAINED_IMPORT).u32(0).u32(0);
  const imgAt = b.length;
  b.u32(segs.length);
  const infoAt = b.length;
  b.zeros(4 * segs.length);
  const infoOffsets: number[] = new Array(segs.length).fill(0);
  segs.forEach((s, i) => {
    const ps = pages.get(i);
    if (!ps) return;
    b.align(8);
    infoOffsets[i] = b.length - imgAt;
    const pageCount = Number((s.vmsize + BigInt(page) - 1n) / BigInt(page));
    const size = 22 + 2 * pageCount;
    b.u32(size).u16(page).u16(DYLD_CHAINED_PTR_64_KERNEL_CACHE).u64(s.vmaddr - base).u32(0).u16(pageCount);
    for (let p = 0; p < pageCount; p++) {
      const list = ps.get(p);
      b.u16(list ? Number(list[0]! - s.vmaddr - BigInt(p * page)) : 0xffff);
    }
  });
  b.align(8);
  const end = b.length;
  const out = b.result();
  const dvw = new DataView(out.buffer);
  infoOffsets.forEach((o, i) => dvw.setUint32(infoAt + 4 * i, o, true));
  // No imports: imports_offset and symbols_offset point at the end.
  dvw.setUint32(8, end, true);
  dvw.setUint32(12, end, true);
  return out;
}

function writeChainEntries(out: Uint8Array, segs: SegRange[], slots: Map<bigint, Slot>, base: bigint, page: number): void {
  for (const [addr, v] of slots) {
    if ('raw' in v) setU64(out, Number(addr - base), v.raw);
  }
  for (const [, ps] of chainPages(segs, slots, page)) {
    for (const [, list] of ps) {
      for (let i = 0; i < list.length; i++) {
        const a = list[i]!;
        const v = slots.get(a) as { target: bigint; auth?: PointerAuth };
        let next = 0n;
        if (i + 1 < list.length) {
          const gap = list[i + 1]! - a;
          if (gap % 4n !== 0n) throw new FormatError(S, a, `pointers at 0x${a.toString(16)} and 0x${list[i + 1]!.toString(16)} are not 4-byte apart multiples (stride 4)`);
          next = gap / 4n;
          if (next >= 1n << 12n) throw new FormatError(S, a, 'pointers too far apart for one chain link');
        }
        const target = v.target - base;
        if (target < 0n || target >= 1n << 30n) throw new FormatError(S, a, `target 0x${v.target.toString(16)} outside the collection`);
        let e = target | (next << 51n);
        if (v.auth) {
          e |= (BigInt(v.auth.diversity) << 32n) | ((v.auth.addrDiv ? 1n : 0n) << 48n) | (BigInt(v.auth.key) << 49n) | (1n << 63n);
        }
        setU64(out, Number(a - base), e);
      }
    }
  }
}
