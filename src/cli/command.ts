import type { Argv, ArgumentsCamelCase } from 'yargs';
import { Ui, type GlobalFlags } from './ui.js';

// A command is a yargs module whose handler receives a Ui; errors propagate to main.ts, which
// alone turns them into messages and exit codes.

export interface M1prepCommand<A = Record<string, unknown>> {
  command: string | string[];
  describe: string;
  builder: (y: Argv) => Argv<A>;
  run: (args: ArgumentsCamelCase<A & GlobalFlags>, ui: Ui) => Promise<number | void> | number | void;
}

export function defineCommand<A>(c: M1prepCommand<A>): M1prepCommand<A> {
  return c;
}
