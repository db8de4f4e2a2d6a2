import { FormatError } from '../errors.js';
import { ByteSink, alignUpBig, setU64 } from './macho-bytes.js';
import { CPU_TYPE_X86_64, LC_CODE_SIGNATURE } from './macho-constants.js';
import { parseMachO, vmToFileOffset, type MachO } from './macho.js';
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
  const le = new ByteSink();
  const dropCmds = new Set([LC_CODE_SIGNATURE]);
  const placement = placeLinkedit(em, le, 0n, { dropCmds, clearDyldInfoFixups: false });
  le.align(8);
  const linkedit = { vmaddr: alignUpBig(vmEnd, page), fileoff: cursor, size: BigInt(le.length) };
  const out = new Uint8Array(Number(cursor) + le.length);
  for (const s of withData) {
    const from = Number(s.fileoff);
    out.set(em.bytes.subarray(from, from + Number(s.filesize)), Number(newOff.get(s)!));
  }
  out.set(le.result(), Number(cursor));
  // Resolve the collection's chain entries that fall in this image.
  if (em.bytes === m.bytes && slotted.collection === m) {
    for (const s of withData) {
      for (const f of fixupsIn(slotted, s.fileoff, s.fileoff + s.filesize)) {
        const rel = BigInt(f.fileOffset) - s.fileoff;
        if (f.kind === 'rebase' && rel >= 0n && rel + 8n <= s.filesize) setU64(out, Number(newOff.get(s)! + rel), f.target!);
      }
    }
  }
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
