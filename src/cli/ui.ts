import pc from 'picocolors';
import cliProgress from 'cli-progress';
import { toJson } from '../util/hex.js';

// Everything the CLI prints goes through here: colours and progress bars only on a TTY,
// --json for machines, --quiet and --verbose.

export interface GlobalFlags {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

const isTty = Boolean(process.stdout.isTTY);
const errTty = Boolean(process.stderr.isTTY);
const colorOk = errTty && !process.env.NO_COLOR;

export const colors = pc.createColors(isTty && !process.env.NO_COLOR);
export const errColors = pc.createColors(colorOk);

export class Ui {
  constructor(readonly flags: GlobalFlags) {}

  get json(): boolean { return Boolean(this.flags.json); }

  /** Machine output: exactly one JSON document on stdout. */
  emitJson(value: unknown): void {
    process.stdout.write(toJson(value) + '\n');
  }

  /** Human output on stdout (suppressed by --json callers choosing emitJson instead). */
  out(line = ''): void {
    process.stdout.write(line + '\n');
  }

  /** Status on stderr, hidden by --quiet. */
  info(line: string): void {
    if (!this.flags.quiet) process.stderr.write(line + '\n');
  }

  verbose(line: string): void {
    if (this.flags.verbose) process.stderr.write(errColors.dim(line) + '\n');
  }

  warn(line: string): void {
    process.stderr.write(errColors.yellow('warning: ') + line + '\n');
  }

  /** A progress bar on stderr when it is a TTY and not --quiet/--json; a no-op otherwise. */
  progress(label: string, total: number): Progress {
    if (!errTty || this.flags.quiet || this.flags.json || total <= 0) return noProgress;
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {value}/{total}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return {
      update: (v: number) => bar.update(v),
      done: () => bar.stop(),
    };
  }
}

export interface Progress {
  update(value: number): void;
  done(): void;
}

const noProgress: Progress = { update() {}, done() {} };

/** Format rows as aligned columns for human output. */
export function table(rows: string[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const r of all) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const lines = all.map(fmt);
  if (header) lines[0] = colors.bold(lines[0]!);
  return lines.join('\n');
}
