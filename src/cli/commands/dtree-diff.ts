import { M1prepError, VerifyError } from '../../errors.js';
import { defineCommand } from '../command.js';
import { diffTrees } from '../../dtb/diff.js';
import { readTreeFile } from './dtree-io.js';

export const dtreeDiffCommand = defineCommand({
  command: 'diff <a> <b>',
  describe: 'compare two device trees of the same kind: nodes and properties added, removed, changed',
  builder: (y) =>
    y
      .positional('a', { type: 'string', demandOption: true })
      .positional('b', { type: 'string', demandOption: true })
      .option('exit-code', { type: 'boolean', default: false, describe: 'exit 1 when the trees differ' })
      .example('$0 dtree diff DeviceTree.j274ap.im4p out/devicetree', 'what the layout derivation changed'),
  run: (args, ui) => {
    const a = readTreeFile(args.a as string).tree;
    const b = readTreeFile(args.b as string).tree;
    if (a.kind !== b.kind) throw new M1prepError(`cannot compare an ${a.kind.toUpperCase()} (${args.a}) with an ${b.kind.toUpperCase()} (${args.b})`);
    const changes = diffTrees(a, b);
    if (ui.json) ui.emitJson({ identical: changes.length === 0, changes });
    else if (changes.length === 0) ui.out('identical');
    else {
      const sign = { 'node-added': '+ node', 'node-removed': '- node', 'prop-added': '+', 'prop-removed': '-', 'prop-changed': '~' } as const;
      for (const c of changes) {
        if (c.property === undefined) ui.out(`${sign[c.kind]} ${c.path}`);
        else if (c.kind === 'prop-changed') ui.out(`~ ${c.path} ${c.property}: ${c.before} -> ${c.after}`);
        else ui.out(`${sign[c.kind]} ${c.path} ${c.property} = ${c.kind === 'prop-added' ? c.after : c.before}`);
      }
    }
    if (args.exitCode && changes.length > 0) throw new VerifyError(`the trees differ in ${changes.length} place(s)`);
    return 0;
  },
});
