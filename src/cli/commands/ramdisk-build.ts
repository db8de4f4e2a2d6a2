import { defineCommand } from '../command.js';
import { UsageError } from '../../errors.js';
import { buildImage } from '../../img/io-build.js';

// `m1prep ramdisk build`: a directory or YAML manifest to an APFS or HFS+ image.

const UNITS: Record<string, bigint> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n };

export function parseSize(s: string): bigint {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`--size ${JSON.stringify(s)}: use bytes or a number with K, M, G or T (powers of 1024)`);
  return BigInt(m[1]!) * UNITS[m[2]!.toLowerCase()]!;
}

export const ramdiskBuildCommand = defineCommand({
  command: 'build',
  describe: 'build an image from a directory or a YAML manifest (no mounting, no root)',
  builder: (y) =>
    y
      .option('fs', { choices: ['apfs', 'hfsplus'] as const, demandOption: true, describe: 'file system to build' })
      .option('from', { type: 'string', demandOption: true, describe: 'source directory, or a .yaml manifest (see docs/ramdisk.md)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'image file to write (replaced atomically)' })
      .option('size', { type: 'string', describe: 'image size (e.g. 64M, 2G); default: what the tree needs plus slack' })
      .option('label', { type: 'string', describe: 'volume name (default: the manifest label, else RAMDISK)' })
      .option('case-sensitive', { type: 'boolean', default: false, describe: 'case-sensitive names (HFSX for HFS+)' })
      .option('role', { type: 'string', describe: 'APFS volume role: system, data, user, recovery, vm, preboot, update, xart, hardware, backup' })
      .option('xattrs', { type: 'boolean', default: true, describe: 'carry the source directory\'s user.* extended attributes (as macOS names: user.com.apple.X -> com.apple.X); --no-xattrs leaves them out' })
      .option('skip-special', { type: 'boolean', default: false, describe: 'leave out device files, sockets and FIFOs instead of failing' })
      .option('fragment', { type: 'number', hidden: true, describe: 'testing: split file data into extents of N blocks' })
      .example('$0 ramdisk build --fs hfsplus --from rootfs/ -o ramdisk.hfs', 'a directory to HFS+')
      .example('$0 ramdisk build --fs apfs --from ramdisk.yaml -o ramdisk.apfs --size 64M --role system', 'a manifest to APFS')
      .epilogue('Timestamps come from SOURCE_DATE_EPOCH when it is set, else from the input; the same input gives the same bytes.'),
  run: (args, ui) => {
    if (args.role && args.fs !== 'apfs') throw new UsageError('--role applies to APFS only');
    let bar: ReturnType<typeof ui.progress> | undefined;
    const plan = buildImage({
      fs: args.fs,
      fromDir: args.from,
      output: args.output,
      size: args.size !== undefined ? parseSize(args.size) : undefined,
      label: args.label,
      caseSensitive: args.caseSensitive,
      role: args.role,
      skipSpecial: args.skipSpecial,
      fragmentBlocks: args.fragment,
      onSkip: (p, what) => ui.warn(`skipped ${p} (${what})`),
      xattrs: args.xattrs,
      onXattrSkip: (ns, p) => ui.warn(ns === null
        ? 'extended attributes of the source are not read on this host (Linux only); the image has none from it'
        : `extended attributes in the ${ns}.* namespace are left out (first on ${p}): only user.* ones have macOS names`),
      progress: (done, total) => {
        if (total < 64n << 20n) return;
        bar ??= ui.progress('writing', Number(total >> 20n));
        bar.update(Number(done >> 20n));
      },
    });
    bar?.done();
    if (ui.json) ui.emitJson({ output: args.output, fs: args.fs, size: plan.size, dataBytes: plan.dataBytes });
    else ui.info(`${args.output}: ${args.fs} image, ${plan.size} bytes (${plan.dataBytes} bytes of file data)`);
    return 0;
  },
});
