import { FormatError } from '../errors.js';
import { ByteSink, alignUpBig, encodeUleb, setU64 } from './macho-bytes.js';
import { REBASE_OPCODE_DONE, REBASE_OPCODE_DO_REBASE_ULEB_TIMES, REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB, REBASE_OPCODE_SET_TYPE_IMM, REBASE_TYPE_POINTER } from './dyld-info.js';
import { CPU_TYPE_X86_64, LC_CODE_SIGNATURE } from './macho-constants.js';
import { commandOf, parseMachO, vmToFileOffset, type MachO } from './macho.js';
import type { Segment64 } from './load-commands.js';
import { headerRoom, isLinkeditSegment, placeLinkedit, relayoutCommands, writeHeaderAndCommands } from './macho-relayout.js';
import { parseChainedFixups, walkSegmentChains, type ChainedFixup, type ChainedFixups } from './fixups.js';
import { filesetEntries, isFileset, openEntry } from './fileset.js';
import { parsePrelinkInfo } from './prelink.js';

// An image inside a kernel collection or prelinked kernel, written out as a standalone Mach-O:
// the same addresses, segments packed one after another in a new file, a fresh __LINKEDIT with
// the image's own symbols and tables. Pointer slots that the collection's top-level chain covers
// get the plain (unslid) address they point at, so the file reads like a statically linked image.

/** The collection's own (top-level) chained fixups, parsed once and shared by every extraction. */
export interface Slotted {
  collection?: MachO;
  fixups?: ChainedFixups;
  base: bigint;
}

export function collectionFixups(m: MachO): Slotted {
  const base = m.segments.find((s) => s.fileoff === 0n && s.filesize > 0n)?.vmaddr ?? 0n;
  return { collection: m, fixups: parseChainedFixups(m), base };
}

/** Chain entries of the collection that fall in [start, end) of the file (only those pages are walked). */
function fixupsIn(slotted: Slotted, start: bigint, end: bigint): ChainedFixup[] {
  const { collection: m, fixups: fx } = slotted;
  if (!m || !fx) return [];
  const out: ChainedFixup[] = [];
  for (const s of fx.segments) {
    const seg = m.segments[s.segIndex]!;
    if (seg.fileoff >= end || seg.fileoff + seg.filesize <= start) continue;
    out.push(...walkSegmentChains(m, s, slotted.base, fx.imports.length, [start, end]));
  }
  return out;
}

/** The image whose mach header is at headerOffset in m.bytes, as a new file. */
export function extractImage(m: MachO, headerOffset: number, slotted: Slotted = { base: 0n }): Uint8Array {
  let em = parseMachO(m.bytes, headerOffset);
  const headerSeg = em.segments.find((s) => s.fileoff === BigInt(headerOffset) && s.filesize > 0n);
  if (!headerSeg) {
    // Older prelinked kernels keep each kext's offsets relative to the kext itself.
    const rel = parseMachO(m.bytes.subarray(headerOffset), 0);
    if (!rel.segments.some((s) => s.fileoff === 0n && s.filesize > 0n)) {
      throw new FormatError('mach_header_64', BigInt(headerOffset), 'no segment starts at this image\'s header');
    }
    em = rel;
  }
  const page = em.header.cputype === CPU_TYPE_X86_64 ? 4096n : 16384n;
  const hdrOff = BigInt(em.headerOffset);
  const kept = em.segments.filter((s) => !isLinkeditSegment(s));
  const withData = kept.filter((s) => s.filesize > 0n).sort((a, b) => (a.fileoff === hdrOff ? -1 : b.fileoff === hdrOff ? 1 : a.fileoff < b.fileoff ? -1 : 1));
  const newOff = new Map<Segment64, bigint>();
  let cursor = 0n;
  for (const s of withData) {
    newOff.set(s, cursor);
    cursor = alignUpBig(cursor + s.filesize, page);
  }
  const vmEnd = kept.reduce((a, s) => (s.vmaddr + s.vmsize > a ? s.vmaddr + s.vmsize : a), 0n);
  // The collection's chain entries that fall in this image: written as plain addresses, and
  // listed as rebases (LC_DYLD_INFO) so the file still says which words are pointers.
  const resolved: { seg: Segment64; rel: bigint; target: bigint }[] = [];
  if (em.bytes === m.bytes && slotted.collection === m) {
    for (const s of withData) {
      for (const f of fixupsIn(slotted, s.fileoff, s.fileoff + s.filesize)) {
        const rel = BigInt(f.fileOffset) - s.fileoff;
        if (f.kind === 'rebase' && rel >= 0n && rel + 8n <= s.filesize) resolved.push({ seg: s, rel, target: f.target! });
      }
    }
  }
  const le = new ByteSink();
  const dropCmds = new Set([LC_CODE_SIGNATURE]);
  const placement = placeLinkedit(em, le, 0n, { dropCmds, clearDyldInfoFixups: false });
  const dyldInfo = commandOf(em, 'dyld_info');
  // (A segment's file bytes are its first bytes of address space, so the offset in the file is the
  // offset in the segment. The opcodes name segments in 4 bits: indexes above 15 cannot be said.)
  const slots = resolved.map((r) => ({ segIndex: em.segments.indexOf(r.seg), offset: r.rel }));
  if (dyldInfo && slots.length > 0 && slots.every((x) => x.segIndex < 16)) {
    le.align(8);
    const at = le.length;
    le.bytes(rebaseOpcodes(slots));
    const f = placement.fields.get(dyldInfo.offset)!;
    f.rebase_off = at;
    f.rebase_size = le.length - at;
  }
  le.align(8);
  const linkedit = { vmaddr: alignUpBig(vmEnd, page), fileoff: cursor, size: BigInt(le.length) };
  const out = new Uint8Array(Number(cursor) + le.length);
  for (const s of withData) {
    const from = Number(s.fileoff);
    out.set(em.bytes.subarray(from, from + Number(s.filesize)), Number(newOff.get(s)!));
  }
  out.set(le.result(), Number(cursor));
  for (const r of resolved) setU64(out, Number(newOff.get(r.seg)! + r.rel), r.target);
  const { cmds, ncmds } = relayoutCommands(em, placement, {
    delta: 0n,
    segmentFileoff: (s) => newOff.get(s) ?? 0n,
    linkedit,
    dropCmds,
    clearDyldInfoFixups: false,
  });
  writeHeaderAndCommands(out, 0, em, cmds, ncmds, headerRoom(em));
  return out;
}

/** REBASE_OPCODE_* (mach-o/loader.h) for pointer slots, sorted, runs of adjacent slots merged. */
function rebaseOpcodes(slots: { segIndex: number; offset: bigint }[]): Uint8Array {
  const b = new ByteSink();
  b.u8(REBASE_OPCODE_SET_TYPE_IMM | REBASE_TYPE_POINTER);
  const sorted = [...slots].sort((x, y) => x.segIndex - y.segIndex || (x.offset < y.offset ? -1 : x.offset > y.offset ? 1 : 0));
  for (let i = 0; i < sorted.length;) {
    const { segIndex, offset } = sorted[i]!;
    let n = 1;
    while (i + n < sorted.length && sorted[i + n]!.segIndex === segIndex && sorted[i + n]!.offset === offset + BigInt(n) * 8n) n++;
    b.u8(REBASE_OPCODE_SET_SEGMENT_AND_OFFSET_ULEB | segIndex).bytes(encodeUleb(offset));
    b.u8(REBASE_OPCODE_DO_REBASE_ULEB_TIMES).bytes(encodeUleb(BigInt(n)));
    i += n;
  }
  b.u8(REBASE_OPCODE_DONE);
  return b.result();
}

export interface ExtractTarget {
  id: string;
  headerOffset: number;
}

/** What can be extracted: fileset entries (kernel included) or a prelinked kernel's kexts with code. */
export function extractTargets(m: MachO): ExtractTarget[] {
  if (isFileset(m)) return filesetEntries(m).map((e) => ({ id: e.id, headerOffset: Number(e.fileoff) }));
  const out: ExtractTarget[] = [];
  for (const k of parsePrelinkInfo(m) ?? []) {
    if (k.codeless || k.loadAddr === undefined) continue;
    const off = vmToFileOffset(m, k.loadAddr);
    if (off === undefined) throw new FormatError(`kext ${k.id}`, k.loadAddr, `_PrelinkExecutableLoadAddr 0x${k.loadAddr.toString(16)} is not in the file`);
    out.push({ id: k.id, headerOffset: Number(off) });
  }
  return out;
}

export { openEntry };
