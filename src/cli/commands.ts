import type { M1prepCommand } from './command.js';
// Every command, one file each under ./commands. Keep this list sorted by area.
import { doctorCommand } from './commands/doctor.js';
import { ramdiskCommand } from './commands/ramdisk.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: M1prepCommand<any>[] = [
  doctorCommand,
  ramdiskCommand,
];
