import { FILETYPE_NAMES, MH_EXECUTE, PLATFORM_NAMES, archName, cpuName, headerFlagNames } from './macho-constants.js';
import { loadCommandName } from './load-commands.js';
import { commandOf, entryPoint, uuidString, type MachO } from './macho.js';
import { KERNEL_ENTRY_ID, filesetEntries, isFileset, openEntry } from './fileset.js';
import { findDarwinVersion, type DarwinVersion } from './macho-darwin-version.js';
import { POINTER_FORMAT_NAMES, chainedFormats, parseChainedFixups } from './fixups.js';
import { parseCodeSignature } from './codesign.js';
import { parsePrelinkInfo } from './prelink.js';

// What `m1prep info` says about one Mach-O: plain data (bigints for addresses), no formatting.

export interface MachOSummary {
  cpu: string;
  arch: string;
  cputype: number;
  cpusubtype: number;
  filetype: string;
  flags: number;
  flagNames: string[];
  ncmds: number;
  sizeofcmds: number;
  uuid?: string;
  /** LC_BUILD_VERSION or LC_VERSION_MIN_*: platform, minimum OS and SDK as "X.Y.Z". */
  build?: { platform: string; minos: string; sdk: string };
  entry?: { vmaddr: bigint; source: string };
  segments: { name: string; vmaddr: bigint; vmsize: bigint; fileoff: bigint; filesize: bigint; maxprot: number; initprot: number; nsects: number }[];
  loadCommands: { cmd: string; cmdsize: number }[];
  darwinVersion?: { major: number; minor: number; patch: number; text: string };
  filesetEntries?: number;
  /** Each LC_FILESET_ENTRY: bundle id, address and file offset of its mach header. */
  entries?: { id: string; vmaddr: bigint; fileoff: bigint }[];
  prelinkedKexts?: number;
  fixups: { chained: string[]; dyldInfo: boolean };
  codeSignature?: { blobs: string[]; identifier?: string };
}

/** Versions in LC_BUILD_VERSION are nibbles xxxx.yy.zz (mach-o/loader.h). */
const xyz = (v: number) => `${v >>> 16}.${(v >>> 8) & 0xff}.${v & 0xff}`;

function buildVersion(m: MachO): MachOSummary['build'] {
  const b = commandOf(m, 'build_version');
  if (b) return { platform: PLATFORM_NAMES[b.platform] ?? `platform ${b.platform}`, minos: xyz(b.minos), sdk: xyz(b.sdk) };
  const v = commandOf(m, 'version_min');
  if (v) return { platform: loadCommandName(v.cmd).replace('LC_VERSION_MIN_', ''), minos: xyz(v.version), sdk: xyz(v.sdk) };
  return undefined;
}

function versionOut(v: DarwinVersion | undefined) {
  return v && { major: v.major, minor: v.minor, patch: v.patch, text: v.text };
}

export function summarizeMachO(m: MachO): MachOSummary {
  const fx = parseChainedFixups(m);
  const s: MachOSummary = {
    cpu: cpuName(m.header.cputype, m.header.cpusubtype),
    arch: archName(m.header.cputype, m.header.cpusubtype),
    cputype: m.header.cputype,
    cpusubtype: m.header.cpusubtype,
    filetype: FILETYPE_NAMES[m.header.filetype] ?? `0x${m.header.filetype.toString(16)}`,
    flags: m.header.flags,
    flagNames: headerFlagNames(m.header.flags),
    ncmds: m.header.ncmds,
    sizeofcmds: m.header.sizeofcmds,
    uuid: uuidString(m),
    build: buildVersion(m),
    entry: entryPoint(m),
    segments: m.segments.map((g) => ({ name: g.segname, vmaddr: g.vmaddr, vmsize: g.vmsize, fileoff: g.fileoff, filesize: g.filesize, maxprot: g.maxprot, initprot: g.initprot, nsects: g.nsects })),
    loadCommands: m.commands.map((c) => ({ cmd: loadCommandName(c.cmd), cmdsize: c.cmdsize })),
    fixups: { chained: chainedFormats(fx).map((f) => POINTER_FORMAT_NAMES[f] ?? `format ${f}`), dyldInfo: commandOf(m, 'dyld_info') !== undefined },
  };
  if (isFileset(m)) {
    const entries = filesetEntries(m);
    s.filesetEntries = entries.length;
    s.entries = entries.map((e) => ({ id: e.id, vmaddr: e.vmaddr, fileoff: e.fileoff }));
    const k = entries.find((e) => e.id === KERNEL_ENTRY_ID);
    if (k) {
      const km = openEntry(m, k);
      s.darwinVersion = versionOut(findDarwinVersion(km));
      s.entry ??= entryPoint(km);
    }
  } else if (m.header.filetype === MH_EXECUTE) {
    s.darwinVersion = versionOut(findDarwinVersion(m));
  }
  if (!isFileset(m)) {
    const pk = parsePrelinkInfo(m);
    if (pk) s.prelinkedKexts = pk.length;
  }
  const cs = parseCodeSignature(m);
  if (cs) s.codeSignature = { blobs: cs.blobs.map((b) => b.slot), identifier: cs.codeDirectory?.identifier };
  return s;
}
