import type { Argv } from 'yargs';
import { defineCommand, type M1prepCommand } from '../command.js';
import { Ui, type GlobalFlags } from '../ui.js';
import { dtreeShowCommand } from './dtree-show.js';
import { dtreeBuildCommand } from './dtree-build.js';
import { dtreeEditCommand } from './dtree-edit.js';
import { dtreeDiffCommand } from './dtree-diff.js';
import { dtreeLayoutCommand } from './dtree-layout.js';

// `m1prep dtree ...`: one parent command whose subcommands live in their own files. The default
// subcommand shows a tree: `m1prep dtree FILE [NODE]`.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const subcommands: M1prepCommand<any>[] = [dtreeBuildCommand, dtreeEditCommand, dtreeDiffCommand, dtreeLayoutCommand, dtreeShowCommand];

export const dtreeCommand = defineCommand({
  command: 'dtree',
  describe: 'Apple device trees (ADT) and FDTs: show, query, edit, diff, rebuild; derive the VM\'s trees from the layout',
  builder: (y: Argv) => {
    let out = y;
    for (const c of subcommands) {
      out = out.command({
        command: c.command,
        describe: c.describe,
        builder: c.builder,
        handler: async (args) => {
          await c.run(args as never, new Ui(args as GlobalFlags));
        },
      });
    }
    return out;
  },
  run: () => 0,
});
