import { statSync } from 'node:fs';
import { UsageError } from '../../errors.js';
import { findKernelcaches, loadProfiles, matrixFailed, matrixMarkdown, matrixRow, matrixTable } from '../../patches/matrix.js';
import { defineCommand } from '../command.js';
import { table } from '../ui.js';

export const matrixCommand = defineCommand({
  command: 'matrix',
  describe: 'dry-run every profile against every kernelcache in a directory (matched by Darwin version): which patch matches where',
  builder: (y) =>
    y
      .option('kernelcaches', { type: 'string', demandOption: true, describe: 'directory of kernelcaches (IM4P or raw; one level of sub-directories is searched)' })
      .option('profile', { type: 'string', array: true, describe: 'profiles to use (default: every shipped profile)' })
      .option('markdown', { type: 'boolean', describe: 'print a Markdown table (for CI job summaries)' })
      .example('$0 matrix --kernelcaches samples/build', 'the shipped profiles against the sample collections')
      .example('$0 matrix --kernelcaches ~/kernelcaches --markdown >> "$GITHUB_STEP_SUMMARY"', 'in CI'),
  run: async (argv, ui) => {
    const args = argv as unknown as { kernelcaches: string; profile?: string[]; markdown?: boolean };
    let isDir = false;
    try {
      isDir = statSync(args.kernelcaches).isDirectory();
    } catch { /* reported below */ }
    if (!isDir) throw new UsageError(`--kernelcaches ${args.kernelcaches}: not a directory`);
    const files = findKernelcaches(args.kernelcaches);
    if (files.length === 0) throw new UsageError(`${args.kernelcaches}: no kernelcache files (*.im4p, *.macho, kernelcache*)`);
    const profiles = loadProfiles(args.profile ?? []);
    const bar = ui.progress('matrix', files.length);
    const rows = files.map((f, i) => {
      const r = matrixRow(f, profiles);
      bar.update(i + 1);
      return r;
    });
    bar.done();
    if (ui.json) ui.emitJson({ rows, failed: matrixFailed(rows) });
    else if (args.markdown) ui.out(matrixMarkdown(rows));
    else {
      const { header, body } = matrixTable(rows);
      ui.out(table(body, header));
    }
    return matrixFailed(rows) ? 3 : 0;
  },
});
