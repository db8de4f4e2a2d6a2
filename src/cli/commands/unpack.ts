import { readFileSync } from 'node:fs';
import { defineCommand } from '../command.js';
import { FormatError, UsageError, inFile } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { openContainer } from '../../macho/container.js';
import { lzssDecode } from '../../macho/lzss.js';
import { lzvnDecode } from '../../macho/lzvn-decode.js';
import { lzfseDecode } from '../../macho/lzfse-decode.js';
import { type Img4, manifestComponents, findProperty, propertiesToObject } from '../../macho/img4.js';

// `m1prep unpack`: the payload of an IMG4/IM4P, a complzss file or a raw LZFSE stream, fully
// decompressed; bare LZSS and LZVN streams (no magic) on request.

/** Largest --size accepted: the largest typed array Node 20 allocates. */
const MAX_BARE_SIZE = 2 ** 32 - 1;

function parseBytes(s: string): number {
  const m = /^(0x[0-9a-f]+|\d+)\s*([kmg]?)(i?b)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`--size ${JSON.stringify(s)}: give bytes (decimal or 0x hex), optionally with K, M or G`);
  const n = Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase());
  if (!Number.isSafeInteger(n) || n > MAX_BARE_SIZE) throw new UsageError(`--size ${s}: at most ${MAX_BARE_SIZE} bytes`);
  return n;
}

interface Result {
  layers: string[];
  payload: Uint8Array;
  fourcc?: string;
  description?: string;
  compression: string;
  encrypted?: boolean;
  img4?: Img4;
}

/** What an IMG4's manifest and restore info say (digests and nonces are not checked). */
function manifestSummary(img4: Img4 | undefined) {
  if (!img4?.im4m && !img4?.im4r) return undefined;
  const m = img4.im4m;
  const manp = findProperty(m?.body, 'MANP');
  return {
    im4m: m && {
      version: m.version,
      properties: manp?.value.type === 'dict' ? propertiesToObject(manp.value.value) : {},
      components: Object.fromEntries(manifestComponents(m).map((c) => [c.fourcc, propertiesToObject(c.properties)])),
    },
    im4r: img4.im4r && propertiesToObject(img4.im4r.properties),
  };
}

function unpack(bytes: Uint8Array, format: string, size: number | undefined): Result {
  switch (format) {
    case 'lzss': {
      const { data } = lzssDecode(bytes, size);
      // A bare LZSS stream has no end marker: a truncated one decodes to a shorter output without
      // complaint, so with --size the output must reach it.
      if (size !== undefined && data.length < size) {
        throw new FormatError('LZSS stream', BigInt(bytes.length), `the stream ends after ${data.length} bytes of output, but --size says ${size} (truncated input?)`);
      }
      return { layers: ['lzss'], payload: data, compression: 'lzss' };
    }
    case 'lzvn':
      if (size === undefined) throw new UsageError('a bare LZVN stream does not say its size: give --size (the decompressed size, or an upper bound)');
      return { layers: ['lzvn'], payload: lzvnDecode(bytes, size), compression: 'lzvn' };
    case 'lzfse':
      return { layers: ['lzfse'], payload: lzfseDecode(bytes), compression: 'lzfse' };
    default: {
      const c = openContainer(bytes);
      if (c.layers.length === 0) {
        throw new FormatError('container', 0n, 'not an IMG4, IM4P, complzss or LZFSE file (for a bare LZSS or LZVN stream use --format lzss or --format lzvn --size N)');
      }
      return c;
    }
  }
}

export const unpackCommand = defineCommand({
  command: 'unpack <file>',
  describe: 'decompress and unwrap a kernelcache or firmware file (IMG4, IM4P, complzss, LZFSE; bare LZSS/LZVN)',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'input file' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'where to write the payload (replaced atomically)' })
      .option('format', {
        choices: ['auto', 'lzss', 'lzvn', 'lzfse'] as const,
        default: 'auto' as const,
        describe: 'auto: detect IMG4/IM4P/complzss/LZFSE; lzss, lzvn: a bare stream without header',
      })
      .option('size', { type: 'string', describe: 'decompressed size of a bare stream (required for lzvn; optional for lzss, where a shorter output is then an error)' })
      .example('$0 unpack kernelcache.release.t8103 -o kernelcache.macho', 'IM4P -> LZFSE -> Mach-O')
      .example('$0 unpack DeviceTree.j274ap.im4p -o j274ap.dtre --json', 'layers and sizes as JSON')
      .example('$0 unpack prelinkedkernel.lzvn --format lzvn --size 0x2000000 -o kernel', 'a bare LZVN stream')
      .epilogue('Encrypted IM4P payloads (with keybags) are written as stored: m1prep has no keys.'),
  run: async (args, ui) => {
    const file = args.file;
    if (args.size !== undefined && args.format === 'auto') throw new UsageError('--size applies to --format lzss or lzvn only');
    const size = args.size !== undefined ? parseBytes(args.size) : undefined;
    const bytes = readFileSync(file);
    const r = inFile(file, () => unpack(bytes, args.format, size));
    await writeFileAtomic(args.output, r.payload);
    if (ui.json) {
      ui.emitJson({
        input: file, output: args.output, layers: r.layers, fourcc: r.fourcc, description: r.description,
        compression: r.compression, encrypted: r.encrypted ?? false, inputSize: bytes.length, outputSize: r.payload.length,
        ...manifestSummary(r.img4),
      });
    } else {
      const what = [r.layers.join(' > '), r.fourcc ? `type ${r.fourcc}` : '', r.description ? `"${r.description}"` : ''].filter(Boolean).join(', ');
      ui.info(`${file}: ${what}`);
      if (r.encrypted) ui.warn('the payload is encrypted (IM4P keybags present); written as stored');
      if (r.img4?.im4m) ui.info(`IM4M: manifest for ${manifestComponents(r.img4.im4m).map((c) => c.fourcc).join(', ')}`);
      if (r.img4?.im4r) ui.info(`IM4R: ${r.img4.im4r.properties.map((p) => p.name).join(', ')}`);
      ui.out(`wrote ${args.output}: ${r.payload.length} bytes (from ${bytes.length})`);
    }
    return 0;
  },
});
