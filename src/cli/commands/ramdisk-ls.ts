import { defineCommand } from '../command.js';
import { table } from '../ui.js';
import { inFile } from '../../errors.js';
import { openFileSource } from '../../img/io-read.js';
import { openVolume } from '../../img/open.js';
import type { FsEntry } from '../../img/entry.js';

// `m1prep ramdisk ls`: list a directory of an HFS+ or APFS image (bare, GPT or APM disk).

const TYPE: Record<FsEntry['kind'], string> = { file: '-', dir: 'd', symlink: 'l', other: '?' };

export function modeString(e: FsEntry): string {
  const p = e.mode & 0o7777;
  const rwx = (v: number, s: boolean, ch: string) => `${v & 4 ? 'r' : '-'}${v & 2 ? 'w' : '-'}${s ? (v & 1 ? ch : ch.toUpperCase()) : v & 1 ? 'x' : '-'}`;
  return TYPE[e.kind] + rwx(p >> 6, Boolean(p & 0o4000), 's') + rwx(p >> 3, Boolean(p & 0o2000), 's') + rwx(p, Boolean(p & 0o1000), 't');
}

/** Control characters (HFS+ private directories start with four NULs) made visible. */
function printable(name: string): string {
  return name.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export const ramdiskLsCommand = defineCommand({
  command: 'ls <image> [path]',
  describe: 'list a directory (default /) of an HFS+ or APFS image',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'image file (bare volume, GPT or Apple Partition Map disk)' })
      .positional('path', { type: 'string', default: '/', describe: 'directory or file inside the image' })
      .option('long', { alias: 'l', type: 'boolean', default: false, describe: 'mode, owner, size, date' })
      .option('recursive', { alias: 'R', type: 'boolean', default: false, describe: 'everything below the path' })
      .example('$0 ramdisk ls ramdisk.hfs -l', 'the root directory, long format')
      .example('$0 ramdisk ls disk.img /bin --json', 'a directory as JSON'),
  run: (args, ui) => {
    const src = openFileSource(args.image);
    try {
      const entries = inFile(args.image, () => {
        const vol = openVolume(src);
        const st = vol.stat(args.path);
        if (st.kind !== 'dir') return [st];
        return args.recursive ? [...vol.walk(args.path)] : vol.list(args.path);
      });
      if (ui.json) {
        ui.emitJson(entries.map((e) => ({ ...e, mode: '0' + e.mode.toString(8) })));
      } else if (args.long) {
        ui.out(table(entries.map((e) => [
          modeString(e), String(e.uid), String(e.gid), String(e.size),
          new Date(Number(e.mtimeNs / 1_000_000n)).toISOString().replace('.000Z', 'Z'),
          printable(args.recursive ? e.path : e.name) + (e.target !== undefined ? ` -> ${printable(e.target)}` : ''),
        ])));
      } else {
        for (const e of entries) ui.out(printable(args.recursive ? e.path : e.name));
      }
    } finally {
      src.close();
    }
    return 0;
  },
});
