import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defineCommand } from '../command.js';
import { table } from '../ui.js';
import { inFile } from '../../errors.js';
import { hex } from '../../util/hex.js';
import { openMachO } from '../../macho/macho-open.js';
import { summarizeMachO } from '../../macho/macho-summary.js';

// `m1prep info FILE`: container layers and compression, then what the Mach-O inside is.

/** The file's bytes without a copy (a Buffer is a Uint8Array view; `new Uint8Array(buf)` would copy). */
export function readInputFile(file: string): Uint8Array {
  const b = readFileSync(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

const prot = (p: number) => `${p & 1 ? 'r' : '-'}${p & 2 ? 'w' : '-'}${p & 4 ? 'x' : '-'}`;

export const infoCommand = defineCommand({
  command: 'info <file>',
  describe: 'show a kernelcache, kext or Mach-O: container, compression, sizes, CPU, type, UUID, entry, segments, Darwin version',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'IMG4/IM4P, complzss, LZFSE, fat or thin Mach-O, kernel collection' })
      .option('arch', { type: 'string', describe: 'fat files: which slice (arm64e, arm64, x86_64); default arm64e, then arm64' })
      .example('$0 info kernelcache.release.j274 --json', 'everything as JSON (64-bit values as "0x..." strings)')
      .example('$0 info /bin/ls --arch x86_64', 'one slice of a universal binary'),
  run: (args, ui) => {
    const file = args.file;
    const bytes = readInputFile(file);
    const info = inFile(file, () => {
      const o = openMachO(bytes, { arch: args.arch });
      return {
        file: path.basename(file),
        size: bytes.length,
        container: {
          layers: o.container.layers,
          compression: o.container.compression,
          fourcc: o.container.fourcc,
          description: o.container.description,
          storedSize: o.container.storedSize,
          payloadSize: o.container.payload.length,
          encrypted: o.container.encrypted,
        },
        fat: o.fat && {
          slices: o.fat.arches.map((a) => ({ arch: a.arch, cputype: a.cputype, cpusubtype: a.cpusubtype, offset: a.offset, size: a.size, align: a.align })),
          selected: o.slice!.arch,
        },
        macho: o.macho && summarizeMachO(o.macho),
      };
    });
    if (ui.json) {
      ui.emitJson(info);
      return 0;
    }
    const c = info.container;
    const rows: string[][] = [['file', `${info.file} (${info.size} bytes)`]];
    rows.push(['container', c.layers.length ? `${c.layers.join(' > ')}${c.fourcc ? ` (type ${c.fourcc}${c.description ? `, "${c.description}"` : ''})` : ''}` : 'none (raw)']);
    rows.push(['compression', `${c.compression}${c.compression !== 'none' ? ` (${c.storedSize} -> ${c.payloadSize} bytes)` : ''}${c.encrypted ? ', payload encrypted' : ''}`]);
    if (info.fat) rows.push(['fat slices', info.fat.slices.map((s) => `${s.arch} @${hex(s.offset)} (${s.size} bytes)`).join(', ') + `; showing ${info.fat.selected}`]);
    const m = info.macho;
    if (!m) {
      rows.push(['payload', 'not a 64-bit Mach-O']);
      ui.out(table(rows));
      return 0;
    }
    rows.push(['cpu', `${m.cpu} (cputype ${hex(m.cputype)}, cpusubtype ${hex(m.cpusubtype)})`]);
    rows.push(['filetype', m.filetype]);
    rows.push(['flags', m.flagNames.join(' ') || 'none']);
    rows.push(['load commands', `${m.ncmds} (${m.sizeofcmds} bytes)`]);
    if (m.uuid) rows.push(['uuid', m.uuid]);
    if (m.build) rows.push(['build', `${m.build.platform} ${m.build.minos} (SDK ${m.build.sdk})`]);
    if (m.entry) rows.push(['entry', `${hex(m.entry.vmaddr)} (${m.entry.source})`]);
    if (m.darwinVersion) rows.push(['darwin', `${m.darwinVersion.major}.${m.darwinVersion.minor}.${m.darwinVersion.patch}  (${m.darwinVersion.text})`]);
    if (m.filesetEntries !== undefined) rows.push(['fileset entries', String(m.filesetEntries)]);
    if (m.prelinkedKexts !== undefined) rows.push(['prelinked kexts', String(m.prelinkedKexts)]);
    rows.push(['fixups', [...m.fixups.chained, ...(m.fixups.dyldInfo ? ['LC_DYLD_INFO opcodes'] : [])].join(', ') || 'none']);
    if (m.codeSignature) rows.push(['code signature', `${m.codeSignature.blobs.join(', ')}${m.codeSignature.identifier ? ` (${m.codeSignature.identifier})` : ''}`]);
    ui.out(table(rows));
    ui.out('');
    ui.out(table(m.segments.map((s) => [s.name, hex(s.vmaddr), hex(s.vmsize), hex(s.fileoff), hex(s.filesize), `${prot(s.initprot)}/${prot(s.maxprot)}`]), ['segment', 'vmaddr', 'vmsize', 'fileoff', 'filesize', 'prot']));
    return 0;
  },
});
