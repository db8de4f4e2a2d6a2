import type { M1prepCommand } from './command.js';

// Every command, one file each under ./commands, loaded on demand: a run of one command imports
// only that command's module (and what it needs), so `m1prep kexts` does not pay for the patch
// engine or the VMM. `m1prep --help` loads them all to list them.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loader = () => Promise<M1prepCommand<any>>;

export const commandLoaders: Record<string, Loader> = {
  // kernelcache reader
  info: async () => (await import('./commands/info.js')).infoCommand,
  kexts: async () => (await import('./commands/kexts.js')).kextsCommand,
  extract: async () => (await import('./commands/extract.js')).extractCommand,
  unpack: async () => (await import('./commands/unpack.js')).unpackCommand,
  pack: async () => (await import('./commands/pack.js')).packCommand,
  // device trees, ramdisks
  dtree: async () => (await import('./commands/dtree.js')).dtreeCommand,
  ramdisk: async () => (await import('./commands/ramdisk.js')).ramdiskCommand,
  // patching and the version matrix
  patch: async () => (await import('./commands/patch.js')).patchCommand,
  matrix: async () => (await import('./commands/matrix.js')).matrixCommand,
  // boot, the bundled sample, the host
  boot: async () => (await import('./commands/boot.js')).bootCommand,
  sample: async () => (await import('./commands/sample.js')).sampleCommand,
  doctor: async () => (await import('./commands/doctor.js')).doctorCommand,
};

/** The modules a command line needs: just the named command, or all of them (help, typos). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function loadCommands(argv: readonly string[]): Promise<M1prepCommand<any>[]> {
  const first = argv.find((a) => !a.startsWith('-'));
  const one = first !== undefined ? commandLoaders[first] : undefined;
  if (one) return [await one()];
  return Promise.all(Object.values(commandLoaders).map((l) => l()));
}
