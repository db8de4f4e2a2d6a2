import { once } from 'node:events';
import { defineCommand } from '../command.js';
import { inFile } from '../../errors.js';
import { openFileSource } from '../../img/io-read.js';
import { openVolume } from '../../img/open.js';
import { resolveLinks } from '../../img/entry.js';

// `m1prep ramdisk cat`: write one file of an image to stdout (symlinks inside the image are
// followed, within the image).

export const ramdiskCatCommand = defineCommand({
  command: 'cat <image> <path>',
  describe: 'write a file of an HFS+ or APFS image to stdout',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'image file' })
      .positional('path', { type: 'string', demandOption: true, describe: 'file inside the image' })
      .example('$0 ramdisk cat ramdisk.hfs /etc/hosts', 'print a file'),
  run: async (args) => {
    const src = openFileSource(args.image);
    try {
      const chunks = inFile(args.image, () => {
        const vol = openVolume(src);
        return vol.read(resolveLinks(vol, args.path))[Symbol.iterator]();
      });
      for (;;) {
        const next = inFile(args.image, () => chunks.next());
        if (next.done) break;
        // Respect pipe back-pressure (stdout may be non-blocking).
        if (!process.stdout.write(next.value)) await once(process.stdout, 'drain');
      }
    } finally {
      src.close();
    }
    return 0;
  },
});
