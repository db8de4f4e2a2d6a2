import { FormatError } from '../errors.js';
import { MH_FILESET } from './macho-constants.js';
import { commandsOf, parseMachO, type MachO } from './macho.js';

// MH_FILESET kernel collections: each LC_FILESET_ENTRY names an image whose mach header lives at
// the entry's fileoff; that image's segment file offsets are relative to the whole collection, so
// it is parsed over the collection's bytes (mach-o/loader.h, struct fileset_entry_command).

/** The entry id of the kernel itself in a collection. */
export const KERNEL_ENTRY_ID = 'com.apple.kernel';

export interface FilesetEntry {
  id: string;
  vmaddr: bigint;
  fileoff: bigint;
  /** Offset of the LC_FILESET_ENTRY command (for error messages). */
  commandOffset: number;
}

export function isFileset(m: MachO): boolean {
  return m.header.filetype === MH_FILESET;
}

export function filesetEntries(m: MachO): FilesetEntry[] {
  return commandsOf(m, 'fileset_entry').map((e) => ({ id: e.entry_id, vmaddr: e.vmaddr, fileoff: e.fileoff, commandOffset: e.offset }));
}

/** The entry's own Mach-O view (its header at entry.fileoff, offsets relative to the collection). */
export function openEntry(m: MachO, e: FilesetEntry): MachO {
  if (e.fileoff + 32n > BigInt(m.bytes.length)) {
    throw new FormatError(`LC_FILESET_ENTRY ${e.id}`, BigInt(e.commandOffset), `fileoff 0x${e.fileoff.toString(16)} is past the end of the file`);
  }
  const em = parseMachO(m.bytes, Number(e.fileoff));
  if (em.header.filetype === MH_FILESET) throw new FormatError(`LC_FILESET_ENTRY ${e.id}`, BigInt(e.commandOffset), 'an entry is itself a fileset');
  return em;
}

export function findEntry(m: MachO, id: string): FilesetEntry | undefined {
  return filesetEntries(m).find((e) => e.id === id);
}
