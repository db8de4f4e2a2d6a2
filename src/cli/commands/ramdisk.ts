import { defineCommand } from '../command.js';
import { ramdiskBuildCommand } from './ramdisk-build.js';
import { ramdiskLsCommand } from './ramdisk-ls.js';
import { ramdiskCatCommand } from './ramdisk-cat.js';
import { Ui } from '../ui.js';
import type { M1prepCommand } from '../command.js';

// `m1prep ramdisk build|ls|cat`: APFS and HFS+ images without mounting anything.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const subcommands: M1prepCommand<any>[] = [ramdiskBuildCommand, ramdiskLsCommand, ramdiskCatCommand];

export const ramdiskCommand = defineCommand({
  command: 'ramdisk',
  describe: 'build APFS or HFS+ ramdisk images from a directory or manifest, and list or read images',
  builder: (y) => {
    let yy = y;
    for (const c of subcommands) {
      yy = yy.command({
        command: c.command,
        describe: c.describe,
        builder: c.builder,
        handler: async (args) => {
          const r = await c.run(args as never, new Ui(args as never));
          if (typeof r === 'number' && r !== 0) process.exitCode = r;
        },
      });
    }
    return yy.demandCommand(1, 'name a ramdisk subcommand: build, ls or cat');
  },
  run: () => 0,
});
