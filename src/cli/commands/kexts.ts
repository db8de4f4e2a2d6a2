import { defineCommand } from '../command.js';
import { readInputFile } from './info.js';
import { table } from '../ui.js';
import { inFile } from '../../errors.js';
import { hex } from '../../util/hex.js';
import { openMachO } from '../../macho/macho-open.js';
import { listKexts } from '../../macho/kext.js';

// `m1prep kexts FILE`: one row per kext of a kernel collection or prelinked kernel.

export const kextsCommand = defineCommand({
  command: 'kexts <file>',
  describe: 'list the kexts of a kernel collection (MH_FILESET) or prelinked kernel: id, version, vmaddr, size',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'kernelcache (IMG4/IM4P, compressed or raw)' })
      .option('arch', { type: 'string', describe: 'fat files: which slice' })
      .example('$0 kexts kernelcache.im4p', 'a table of kexts')
      .example('$0 kexts kc.bin --json', '[{id, version, vmaddr, size, ...}] with addresses as "0x..."'),
  run: (args, ui) => {
    const bytes = readInputFile(args.file);
    const rows = inFile(args.file, () => {
      const o = openMachO(bytes, { arch: args.arch, requireMachO: true });
      return listKexts(o.macho!);
    });
    if (ui.json) {
      ui.emitJson({ kexts: rows });
      return 0;
    }
    ui.out(table(rows.map((r) => [r.id, r.version ?? '-', r.vmaddr !== undefined ? hex(r.vmaddr) : '-', r.size !== undefined ? hex(r.size) : '-', r.codeless ? 'codeless' : '']), ['id', 'version', 'vmaddr', 'size', '']));
    ui.info(`${rows.length} kexts`);
    return 0;
  },
});
