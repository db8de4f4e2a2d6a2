#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { M1prepError, FormatError } from '../errors.js';
import { EXIT } from './exit-codes.js';
import { loadCommands } from './commands.js';
import { Ui, errColors } from './ui.js';

// The only place that parses argv and maps errors to exit codes and one-line messages.

function report(e: unknown, verbose: boolean): number {
  if (e instanceof M1prepError) {
    process.stderr.write(`${errColors.red('m1prep:')} ${e.oneLine()}\n`);
    if (verbose && e.stack) process.stderr.write(errColors.dim(e.stack) + '\n');
    return e instanceof FormatError ? EXIT.failure : e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && err.path) {
    // File-system errors (ENOENT, EACCES, ...) are the user's input, not our bug.
    process.stderr.write(`${errColors.red('m1prep:')} ${err.path}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}\n`);
    return EXIT.failure;
  }
  process.stderr.write(`${errColors.red('m1prep: internal error:')} ${err?.message ?? String(e)}\n`);
  if (verbose && err?.stack) process.stderr.write(err.stack + '\n');
  else process.stderr.write('(run again with --verbose for details, and please report it)\n');
  return EXIT.internal;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  let y = yargs(argv)
    .scriptName('m1prep')
    .usage('$0 <command> [options]\n\nPrepare and boot Apple kernelcaches on a virtual Apple M1.')
    .option('json', { type: 'boolean', describe: 'machine-readable output (64-bit values as "0x..." strings)', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only results and errors', global: true })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'print more detail (and stacks on internal errors)', global: true })
    .strict()
    .demandCommand(1, 'name a command (see m1prep --help)')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .epilogue('Exit codes: 0 ok, 1 bad input or failed verification, 2 usage, 3 patch mismatch or invalid patch/profile, 4 host lacks a tool/device, 70 internal error.')
    .fail((msg, err) => {
      if (err) throw err;
      throw Object.assign(new Error(msg), { usage: true });
    });
  for (const c of await loadCommands(argv)) {
    y = y.command({
      command: c.command,
      describe: c.describe,
      builder: c.builder,
      handler: async (args) => {
        const r = await c.run(args as never, new Ui(args as never));
        if (typeof r === 'number') code = r;
      },
    });
  }
  try {
    await y.parseAsync();
  } catch (e) {
    if (e instanceof Error && (e as { usage?: boolean }).usage) {
      process.stderr.write(`${errColors.red('m1prep:')} ${e.message}\n(see m1prep --help)\n`);
      return EXIT.usage;
    }
    return report(e, verbose);
  }
  return code;
}

// `m1prep ... | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(hideBin(process.argv)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.exitCode = report(e, true); },
);
