import { readFileSync } from 'node:fs';
import { FormatError, inFile } from '../../errors.js';
import { defineCommand } from '../command.js';
import { serializeTree, treeFromJson } from '../../dtb/device-tree.js';
import { writeFileAtomic } from '../../util/atomic-write.js';

export const dtreeBuildCommand = defineCommand({
  command: 'build <file>',
  describe: 'rebuild an ADT or FDT from its JSON form (as printed by `m1prep dtree FILE --json`)',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'FILE.json with kind "adt" or "fdt"' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output file' })
      .example('$0 dtree build tree.json -o DeviceTree.dtre', 'byte-identical to the tree the JSON came from, plus your edits'),
  run: async (argv, ui) => {
    const args = argv as unknown as { file: string; output: string };
    const file = args.file;
    const text = readFileSync(file, 'utf8');
    const bytes = inFile(file, () => {
      let j: unknown;
      try {
        j = JSON.parse(text);
      } catch (e) {
        const m = /position (\d+)/.exec((e as Error).message);
        throw new FormatError('JSON', BigInt(m ? Number(m[1]) : 0), (e as Error).message);
      }
      return serializeTree(treeFromJson(j));
    });
    await writeFileAtomic(args.output as string, bytes);
    ui.info(`wrote ${args.output} (${bytes.length} bytes)`);
    if (ui.json) ui.emitJson({ output: args.output, size: bytes.length });
    return 0;
  },
});
