import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { defineCommand } from '../command.js';
import { readInputFile } from './info.js';
import { UsageError, inFile } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { openMachO } from '../../macho/macho-open.js';
import { collectionFixups, extractImage, extractTargets } from '../../macho/kext-extract.js';
import { KERNEL_ENTRY_ID } from '../../macho/fileset.js';

// `m1prep extract FILE (--kext ID | --all | --kernel) --out DIR`: kexts (and the kernel) out of a
// collection as standalone Mach-O files named by bundle id.

export const extractCommand = defineCommand({
  command: 'extract <file>',
  describe: 'write kexts (or the kernel) of a kernel collection / prelinked kernel as standalone Mach-O files',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'kernelcache (IMG4/IM4P, compressed or raw)' })
      .option('kext', { type: 'string', array: true, describe: 'bundle id to extract (repeatable)' })
      .option('all', { type: 'boolean', default: false, describe: 'every kext with code' })
      .option('kernel', { type: 'boolean', default: false, describe: `the kernel itself (${KERNEL_ENTRY_ID})` })
      .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'output directory (created if missing)' })
      .option('arch', { type: 'string', describe: 'fat files: which slice' })
      .example('$0 extract kc.bin --kext com.apple.iokit.IOPCIFamily --out kexts/', 'one kext')
      .example('$0 extract kernelcache.im4p --all --kernel -o out/', 'everything'),
  run: async (args, ui) => {
    const wanted = args.kext ?? [];
    if (!args.all && !args.kernel && wanted.length === 0) throw new UsageError('say what to extract: --kext ID, --all or --kernel');
    const bytes = readInputFile(args.file);
    const outputs = inFile(args.file, () => {
      const m = openMachO(bytes, { arch: args.arch, requireMachO: true }).macho!;
      const targets = extractTargets(m);
      const ids = new Set(targets.map((t) => t.id));
      for (const id of wanted) if (!ids.has(id)) throw new UsageError(`no kext ${id} with code in ${path.basename(args.file)} (see m1prep kexts)`);
      if (args.kernel && !ids.has(KERNEL_ENTRY_ID)) throw new UsageError(`${path.basename(args.file)} has no ${KERNEL_ENTRY_ID} entry (not a kernel collection)`);
      const chosen = targets.filter((t) => (t.id === KERNEL_ENTRY_ID ? args.kernel || wanted.includes(t.id) : args.all || wanted.includes(t.id)));
      const slotted = collectionFixups(m);
      const bar = ui.progress('extract', chosen.length);
      const res = chosen.map((t, i) => {
        const data = extractImage(m, t.headerOffset, slotted);
        bar.update(i + 1);
        return { id: t.id, data };
      });
      bar.done();
      return res;
    });
    mkdirSync(args.out, { recursive: true });
    const written: { id: string; file: string; size: number }[] = [];
    for (const o of outputs) {
      const file = path.join(args.out, o.id.replace(/[/\\]/g, '_'));
      await writeFileAtomic(file, o.data);
      written.push({ id: o.id, file, size: o.data.length });
    }
    if (ui.json) ui.emitJson({ extracted: written });
    else for (const w of written) ui.out(`${w.file}  (${w.size} bytes)`);
    return 0;
  },
});
