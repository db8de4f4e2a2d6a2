import { readFileSync } from 'node:fs';
import { defineCommand } from '../command.js';
import { UsageError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { packIm4p } from '../../macho/container.js';

// `m1prep pack`: wrap a file in a new IM4P, compressed with LZFSE or LZSS (complzss) or stored.

export const packCommand = defineCommand({
  command: 'pack <file>',
  describe: 'wrap a payload (kernelcache, device tree, ramdisk) in an IM4P, optionally compressed',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'payload file' })
      .option('type', { type: 'string', demandOption: true, describe: 'IM4P FourCC: krnl, dtre, rdsk, trst, ...' })
      .option('compress', { choices: ['lzfse', 'lzss', 'none'] as const, demandOption: true, describe: 'payload compression' })
      .option('desc', { type: 'string', default: '', describe: 'IM4P description string' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'IM4P to write (replaced atomically)' })
      .example('$0 pack kernelcache.macho --type krnl --compress lzfse -o kernelcache.im4p', 'an LZFSE kernelcache IM4P')
      .example('$0 pack j274ap.dtre --type dtre --compress none --desc "EmbeddedDeviceTrees" -o dt.im4p', 'an uncompressed device tree')
      .epilogue('A repacked payload no longer matches any IM4M digest, so a real Mac\'s boot chain refuses it; these IM4Ps are for m1prep\'s VMM and for tools.'),
  run: async (args, ui) => {
    if (!/^[\x20-\x7e]{4}$/.test(args.type)) throw new UsageError(`--type must be 4 printable ASCII characters (e.g. krnl), got ${JSON.stringify(args.type)}`);
    if (!/^[\x20-\x7e]*$/.test(args.desc)) throw new UsageError('--desc must be printable ASCII (it is an IA5String)');
    const payload = readFileSync(args.file);
    // A bar for inputs that take more than a moment to compress.
    const bar = args.compress !== 'none' && payload.length >= 16 << 20 ? ui.progress('compressing MiB', Math.ceil(payload.length / 2 ** 20)) : undefined;
    const im4p = packIm4p({
      fourcc: args.type, description: args.desc, payload, compression: args.compress,
      onProgress: bar && ((done) => bar.update(Math.floor(done / 2 ** 20))),
    });
    bar?.done();
    await writeFileAtomic(args.output, im4p);
    if (ui.json) {
      ui.emitJson({ input: args.file, output: args.output, fourcc: args.type, description: args.desc, compression: args.compress, inputSize: payload.length, outputSize: im4p.length });
    } else {
      ui.out(`wrote ${args.output}: IM4P ${args.type}, ${args.compress}, ${payload.length} -> ${im4p.length} bytes`);
    }
    return 0;
  },
});
