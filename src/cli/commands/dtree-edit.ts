import { readFileSync } from 'node:fs';
import { defineCommand } from '../command.js';
import { applyEdits, loadEdits } from '../../dtb/edits.js';
import { serializeTree } from '../../dtb/device-tree.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { readTreeFile } from './dtree-io.js';

export const dtreeEditCommand = defineCommand({
  command: 'edit <file>',
  describe: 'apply YAML device-tree edits (set/delete property, add/delete/rename node, placeholders) to an ADT or FDT',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'ADT, IM4P/IMG4 DeviceTree, or .dtb' })
      .option('apply', { alias: 'a', type: 'string', array: true, demandOption: true, describe: 'edits file (schemas/dtree-edits.schema.json); repeat to apply several in order' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'output file' })
      .option('keep-container', { type: 'boolean', default: false, describe: 'wrap the result the way the input was wrapped (IM4P, LZFSE); default: raw tree' })
      .example('$0 dtree edit DeviceTree.j274ap.im4p --apply edits.yaml -o DeviceTree.dtre', 'raw ADT out'),
  run: async (args, ui) => {
    const opened = readTreeFile(args.file as string);
    let tree = opened.tree;
    let count = 0;
    for (const f of args.apply as string[]) {
      const edits = loadEdits(readFileSync(f, 'utf8'), f);
      tree = applyEdits(tree, edits);
      count += edits.length;
    }
    let bytes = serializeTree(tree);
    if (args.keepContainer && opened.container) bytes = opened.container.repack(bytes);
    await writeFileAtomic(args.output as string, bytes);
    ui.info(`applied ${count} edit(s); wrote ${args.output} (${bytes.length} bytes)`);
    if (ui.json) ui.emitJson({ output: args.output, edits: count, size: bytes.length });
    return 0;
  },
});
