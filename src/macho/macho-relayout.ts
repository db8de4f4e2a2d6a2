import { FormatError } from '../errors.js';
import { ByteSink, setU64, u64 } from './macho-bytes.js';
import { MACH_HEADER_64_SIZE } from './macho-constants.js';
import { isZerofill, type MachO } from './macho.js';
import { serializeLoadCommand, type LoadCommand, type Segment64 } from './load-commands.js';
import { NLIST_64_SIZE } from './symtab.js';

// Moving a Mach-O image to a new place: its segments to new addresses/file offsets and the data its
// load commands point at (symbols, strings, indirect symbols, linkedit blobs) into a new __LINKEDIT.
// Used by the fileset builder (images into a collection) and by extract (an entry out of one).

/** Where each linkedit piece of one image went, as offsets from the start of the new __LINKEDIT. */
export interface LinkeditPlacement {
  /** Per load command (by its offset in the source): new offsets for its offset fields, by field name. */
  fields: Map<number, Record<string, number>>;
}

export interface RelayoutOptions {
  /** Added to every address: segments, sections, symbol values, LC_UNIXTHREAD pc. */
  delta: bigint;
  /** New file offset of a kept segment (other than __LINKEDIT). */
  segmentFileoff: (s: Segment64) => bigint;
  /** The new __LINKEDIT segment (where the placed pieces are). */
  linkedit: { vmaddr: bigint; fileoff: bigint; size: bigint };
  /** Load commands (cmd values) to leave out of the new image. */
  dropCmds: ReadonlySet<number>;
  /** Segments to leave out (e.g. __PAGEZERO). */
  dropSegment?: (s: Segment64) => boolean;
  /** Clear rebase/bind/weak/lazy opcode ranges of LC_DYLD_INFO (fixups are expressed elsewhere). */
  clearDyldInfoFixups: boolean;
}

const DYSYMTAB_TABLES: [off: string, count: string, entrySize: number][] = [
  ['tocoff', 'ntoc', 8], ['modtaboff', 'nmodtab', 56], ['extrefsymoff', 'nextrefsyms', 4],
  ['indirectsymoff', 'nindirectsyms', 4], ['extreloff', 'nextrel', 8], ['locreloff', 'nlocrel', 8],
];

export function isLinkeditSegment(s: Segment64): boolean {
  return s.segname === '__LINKEDIT';
}

/** __PAGEZERO-like: no access, no file data. */
export function isPageZero(s: Segment64): boolean {
  return s.filesize === 0n && s.initprot === 0 && s.maxprot === 0;
}

/**
 * Copy what an image's commands point at in __LINKEDIT into `sink` (8-aligned pieces), sliding
 * symbol values by delta. Returns where each piece went (relative to the sink's start).
 */
export function placeLinkedit(m: MachO, sink: ByteSink, delta: bigint, opts: { dropCmds: ReadonlySet<number>; clearDyldInfoFixups: boolean }): LinkeditPlacement {
  const b = m.bytes;
  const fields = new Map<number, Record<string, number>>();
  const copy = (off: number, size: number): number => {
    if (size === 0) return 0;
    sink.align(8);
    const at = sink.length;
    sink.bytes(b.subarray(off, off + size));
    return at;
  };
  for (const lc of m.commands) {
    if (opts.dropCmds.has(lc.cmd)) continue;
    switch (lc.kind) {
      case 'symtab': {
        sink.align(8);
        const symoff = sink.length;
        const nl = b.slice(lc.symoff, lc.symoff + lc.nsyms * NLIST_64_SIZE);
        for (let i = 0; i < lc.nsyms; i++) {
          const o = i * NLIST_64_SIZE;
          // n_sect != NO_SECT: the value is an address in the image and moves with it.
          if (nl[o + 5] !== 0) setU64(nl, o + 8, BigInt.asUintN(64, u64(nl, o + 8) + delta));
        }
        sink.bytes(nl);
        const stroff = copy(lc.stroff, lc.strsize);
        fields.set(lc.offset, { symoff: lc.nsyms ? symoff : 0, stroff });
        break;
      }
      case 'dysymtab': {
        const f: Record<string, number> = {};
        for (const [off, count, size] of DYSYMTAB_TABLES) {
          const n = (lc as unknown as Record<string, number>)[count]!;
          f[off] = copy((lc as unknown as Record<string, number>)[off]!, n * size);
        }
        fields.set(lc.offset, f);
        break;
      }
      case 'dyld_info': {
        const f: Record<string, number> = {};
        for (const k of ['rebase', 'bind', 'weak_bind', 'lazy_bind', 'export'] as const) {
          const off = lc[`${k}_off`];
          const size = lc[`${k}_size`];
          const clear = opts.clearDyldInfoFixups && k !== 'export';
          f[`${k}_off`] = clear ? 0 : copy(off, size);
          f[`${k}_size`] = clear ? 0 : size;
        }
        fields.set(lc.offset, f);
        break;
      }
      case 'linkedit_data':
        fields.set(lc.offset, { dataoff: copy(lc.dataoff, lc.datasize) });
        break;
      default:
        break;
    }
  }
  return { fields };
}

/**
 * The image's load commands rewritten for its new place. Returns the serialized commands; the
 * caller writes them after a mach_header_64 with the returned ncmds/sizeofcmds.
 */
export function relayoutCommands(m: MachO, placement: LinkeditPlacement, o: RelayoutOptions): { cmds: Uint8Array; ncmds: number } {
  const out: Uint8Array[] = [];
  const le = o.linkedit;
  for (const lc of m.commands) {
    if (o.dropCmds.has(lc.cmd)) continue;
    if (lc.kind === 'segment_64' && o.dropSegment?.(lc.segment)) continue;
    out.push(serializeLoadCommand(moved(lc, placement, o, le)));
  }
  const total = out.reduce((n, c) => n + c.length, 0);
  const cmds = new Uint8Array(total);
  let p = 0;
  for (const c of out) { cmds.set(c, p); p += c.length; }
  return { cmds, ncmds: out.length };
}

function moved(lc: LoadCommand, placement: LinkeditPlacement, o: RelayoutOptions, le: RelayoutOptions['linkedit']): LoadCommand {
  const f = placement.fields.get(lc.offset);
  const abs = (rel: number | undefined, size: number) => (size === 0 || rel === undefined ? 0 : Number(le.fileoff) + rel);
  switch (lc.kind) {
    case 'segment_64': {
      const s = lc.segment;
      if (isLinkeditSegment(s)) {
        return { ...lc, segment: { ...s, vmaddr: le.vmaddr, vmsize: le.size, fileoff: le.fileoff, filesize: le.size } };
      }
      const fileoff = o.segmentFileoff(s);
      const sections = s.sections.map((c) => ({
        ...c,
        addr: c.addr + o.delta,
        offset: isZerofill(c) || c.offset === 0 ? c.offset : Number(fileoff + (BigInt(c.offset) - s.fileoff)),
        reloff: 0,
        nreloc: 0,
      }));
      return { ...lc, segment: { ...s, vmaddr: s.vmaddr + o.delta, fileoff: s.filesize === 0n ? 0n : fileoff, sections } };
    }
    case 'symtab':
      return { ...lc, symoff: abs(f?.symoff, lc.nsyms), stroff: abs(f?.stroff, lc.strsize) };
    case 'dysymtab': {
      const r = { ...lc } as Record<string, unknown>;
      for (const [off, count] of DYSYMTAB_TABLES) r[off] = abs(f?.[off], (lc as unknown as Record<string, number>)[count]!);
      return r as unknown as LoadCommand;
    }
    case 'dyld_info': {
      const r = { ...lc } as Record<string, unknown>;
      for (const k of ['rebase', 'bind', 'weak_bind', 'lazy_bind', 'export']) {
        const size = f?.[`${k}_size`] ?? 0;
        r[`${k}_size`] = size;
        r[`${k}_off`] = abs(f?.[`${k}_off`], size);
      }
      return r as unknown as LoadCommand;
    }
    case 'linkedit_data':
      return { ...lc, dataoff: abs(f?.dataoff, lc.datasize) };
    case 'thread':
      return lc.pc !== undefined ? { ...lc, pc: lc.pc + o.delta } : lc;
    case 'encryption_info_64':
      if (lc.cryptid !== 0) throw new FormatError('LC_ENCRYPTION_INFO_64', BigInt(lc.offset), 'the image is encrypted');
      return lc;
    default:
      return lc;
  }
}

/** Write a mach_header_64 copied from m with new ncmds/sizeofcmds, followed by cmds, at `at` in out. */
export function writeHeaderAndCommands(out: Uint8Array, at: number, m: MachO, cmds: Uint8Array, ncmds: number, room: number): void {
  if (MACH_HEADER_64_SIZE + cmds.length > room) {
    throw new FormatError('mach_header_64', BigInt(m.headerOffset), `rewritten load commands (${cmds.length} bytes) do not fit in the ${room} bytes before the first section`);
  }
  out.set(m.bytes.subarray(m.headerOffset, m.headerOffset + MACH_HEADER_64_SIZE), at);
  const dvw = new DataView(out.buffer, out.byteOffset);
  dvw.setUint32(at + 16, ncmds, true);
  dvw.setUint32(at + 20, cmds.length, true);
  out.fill(0, at + MACH_HEADER_64_SIZE, at + room);
  out.set(cmds, at + MACH_HEADER_64_SIZE);
}

/**
 * Bytes available for header + commands: from the header to the first section data of the segment
 * that holds the header (at most to that segment's end).
 */
export function headerRoom(m: MachO): number {
  const at = BigInt(m.headerOffset);
  const seg = m.segments.find((s) => s.filesize > 0n && at >= s.fileoff && at < s.fileoff + s.filesize);
  if (!seg) return MACH_HEADER_64_SIZE + m.header.sizeofcmds;
  let room = Number(seg.fileoff + seg.filesize - at);
  for (const c of seg.sections) {
    if (!isZerofill(c) && c.size > 0n && c.offset > m.headerOffset) room = Math.min(room, c.offset - m.headerOffset);
  }
  return room;
}
