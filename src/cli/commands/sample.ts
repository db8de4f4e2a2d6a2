import path from 'node:path';
import { defineCommand } from '../command.js';
import { table } from '../ui.js';
import { buildSample, buildSampleDeviceTree } from '../../samples/build.js';
import { loadFlavours, selectFlavours } from '../../samples/flavours.js';
import { defaultSampleOut, sampleRoot } from '../../samples/paths.js';

// `m1prep sample build|list`: the bundled sample guest (samples/xnu-guest), an XNU-contract arm64
// kernel collection built from source, one flavour per shipped profile.

export const sampleCommand = defineCommand({
  command: 'sample <action> [flavours..]',
  describe: 'build the bundled sample kernel collection from source (one per profile version), or list its flavours',
  builder: (y) =>
    y
      .positional('action', { choices: ['build', 'list'] as const, describe: 'build: compile, link, make the MH_FILESET and the IM4P; list: show the flavours', demandOption: true })
      .positional('flavours', { type: 'string', array: true, describe: 'profile or macOS versions (12.3, 14.x, ...); default: all' })
      .option('out', { alias: 'o', type: 'string', describe: 'output root (one directory per flavour); default: samples/build or $M1PREP_SAMPLE_DIR' })
      .option('force', { type: 'boolean', describe: 'rebuild even when the sources did not change' })
      .example('$0 sample build 12.3', 'build samples/build/12.3/kernelcache.im4p')
      .example('$0 sample build', 'build every flavour (11.x ... 15.x) and the base device tree')
      .example('$0 sample list --json', 'the flavours, machine-readable'),
  run: async (args, ui) => {
    const root = sampleRoot();
    const flavours = selectFlavours(loadFlavours(path.join(root, 'flavours.yaml')), (args.flavours as string[] | undefined) ?? []);
    if (args.action === 'list') {
      if (ui.json) ui.emitJson({ flavours });
      else ui.out(table(flavours.map((f) => [f.profile, f.macos, f.darwin, String(f.bootLineLength)]), ['profile', 'macOS', 'Darwin', 'boot line']));
      return 0;
    }
    const outRoot = path.resolve(args.out ?? defaultSampleOut());
    const opts = { sampleRoot: root, outRoot, force: args.force, onStep: (s: string) => ui.verbose(`  ${s}`) };
    const deviceTree = buildSampleDeviceTree(opts);
    const built = [];
    for (const [i, f] of flavours.entries()) {
      ui.info(`[${i + 1}/${flavours.length}] sample ${f.profile} (Darwin ${f.darwin})`);
      built.push(await buildSample(f, opts));
    }
    if (ui.json) {
      ui.emitJson({ deviceTree, samples: built.map((b) => ({ profile: b.flavour.profile, darwin: b.flavour.darwin, collection: b.collection, im4p: b.im4p, cached: b.cached })) });
      return 0;
    }
    ui.out(table(built.map((b) => [b.flavour.profile, b.flavour.darwin, b.cached ? 'up to date' : 'built', path.relative(process.cwd(), b.im4p)]), ['profile', 'Darwin', 'status', 'kernelcache']));
    ui.out(`base device tree: ${path.relative(process.cwd(), deviceTree)}`);
    return 0;
  },
});
