import { writeSync } from 'node:fs';
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
  run: (args) => {
    const src = openFileSource(args.image);
    try {
      inFile(args.image, () => {
        const vol = openVolume(src);
        const path = resolveLinks(vol, args.path);
        for (const chunk of vol.read(path)) {
          let off = 0;
          while (off < chunk.length) off += writeSync(1, chunk, off, chunk.length - off);
        }
      });
    } finally {
      src.close();
    }
    return 0;
  },
});
