import type { M1prepCommand } from './command.js';
// Every command, one file each under ./commands. Keep this list sorted by area.
import { doctorCommand } from './commands/doctor.js';
import { ramdiskCommand } from './commands/ramdisk.js';
import { infoCommand } from './commands/info.js';
import { kextsCommand } from './commands/kexts.js';
import { extractCommand } from './commands/extract.js';
import { unpackCommand } from './commands/unpack.js';
import { packCommand } from './commands/pack.js';
import { dtreeCommand } from './commands/dtree.js';
import { bootCommand } from './commands/boot.js';
import { patchCommand } from './commands/patch.js';
import { matrixCommand } from './commands/matrix.js';
import { sampleCommand } from './commands/sample.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: M1prepCommand<any>[] = [
  doctorCommand,
  ramdiskCommand,
  infoCommand,
  kextsCommand,
  extractCommand,
  unpackCommand,
  packCommand,
  dtreeCommand,
  bootCommand,
  patchCommand,
  matrixCommand,
  sampleCommand,
];
