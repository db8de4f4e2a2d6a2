import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defineCommand } from '../command.js';
import { readInputFile } from './info.js';
import { UsageError, inFile } from '../../errors.js';
import { openMachO } from '../../macho/macho-open.js';
import { collectionFixups, extractImage, extractTargets } from '../../macho/kext-extract.js';
import { KERNEL_ENTRY_ID } from '../../macho/fileset.js';

// `m1prep extract FILE (--kext ID | --all | --kernel) --out DIR`: kexts (and the kernel) out of a
// collection as standalone Mach-O files named by bundle id.

/** A bundle id from the file as a plain file name: no separators, no leading dot. */
function safeFileName(id: string): string {
  const n = id.replace(/[^A-Za-z0-9._+-]/g, '_');
  return n.startsWith('.') || n === '' ? `_${n}` : n;
}

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
    const { m, chosen } = inFile(args.file, () => {
      const m = openMachO(bytes, { arch: args.arch, requireMachO: true }).macho!;
      const targets = extractTargets(m);
      const ids = new Set(targets.map((t) => t.id));
      for (const id of wanted) if (!ids.has(id)) throw new UsageError(`no kext ${id} with code in ${path.basename(args.file)} (see m1prep kexts)`);
      if (args.kernel && !ids.has(KERNEL_ENTRY_ID)) throw new UsageError(`${path.basename(args.file)} has no ${KERNEL_ENTRY_ID} entry (not a kernel collection)`);
      return { m, chosen: targets.filter((t) => (t.id === KERNEL_ENTRY_ID ? args.kernel || wanted.includes(t.id) : args.all || wanted.includes(t.id))) };
    });
    // Each image is written to a staging directory as soon as it is made (memory stays at one
    // image), and all are moved into place only when every one succeeded.
    mkdirSync(args.out, { recursive: true });
    const staging = mkdtempSync(path.join(args.out, '.m1prep-extract-'));
    const written: { id: string; file: string; size: number }[] = [];
    try {
      const slotted = inFile(args.file, () => collectionFixups(m));
      const bar = ui.progress('extract', chosen.length);
      for (const [i, t] of chosen.entries()) {
        const data = inFile(args.file, () => extractImage(m, t.headerOffset, slotted));
        const name = safeFileName(t.id);
        writeFileSync(path.join(staging, name), data);
        written.push({ id: t.id, file: path.join(args.out, name), size: data.length });
        bar.update(i + 1);
      }
      bar.done();
      for (const w of written) renameSync(path.join(staging, path.basename(w.file)), w.file);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    if (ui.json) ui.emitJson({ extracted: written });
    else for (const w of written) ui.out(`${w.file}  (${w.size} bytes)`);
    return 0;
  },
});
