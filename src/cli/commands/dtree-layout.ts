import { readFileSync, statSync } from 'node:fs';
import { M1prepError, UsageError, inFile } from '../../errors.js';
import { defineCommand } from '../command.js';
import { table } from '../ui.js';
import { hex } from '../../util/hex.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { defaultLayoutPath, deviceMap, loadLayout, selectCpus, withRamSize, type VmLayout } from '../../dtb/layout.js';
import { deriveAdt } from '../../dtb/derive-adt.js';
import { deriveFdt } from '../../dtb/derive-fdt.js';
import { serializeAdt } from '../../dtb/adt.js';
import { serializeFdt } from '../../dtb/fdt.js';
import { readTreeFile } from './dtree-io.js';

function parseSize(s: string): bigint {
  const m = /^(0x[0-9a-f_]+|\d+)\s*([KMG]i?B?)?$/i.exec(s.trim());
  if (!m) throw new UsageError(`--ram ${s}: give bytes, hex, or a size such as 2G or 512M`);
  const n = BigInt(m[1]!.replace(/_/g, ''));
  const unit = (m[2] ?? '').toUpperCase()[0];
  return n * (unit === 'K' ? 1n << 10n : unit === 'M' ? 1n << 20n : unit === 'G' ? 1n << 30n : 1n);
}

/** The layout file with the command-line overrides (--cpus, --ram) applied. */
export function layoutFromArgs(args: { layout?: string; cpus?: number; ram?: string }): VmLayout {
  const file = args.layout ?? defaultLayoutPath();
  let l = loadLayout(readFileSync(file, 'utf8'), file);
  if (args.cpus !== undefined) {
    if (!Number.isInteger(args.cpus) || args.cpus < 1 || args.cpus > l.cpus.length) throw new UsageError(`--cpus ${args.cpus}: the layout has 1..${l.cpus.length} CPUs`);
    l = selectCpus(l, args.cpus);
  }
  if (args.ram !== undefined) l = inFile(file, () => withRamSize(l, parseSize(args.ram!)));
  return l;
}

export const dtreeLayoutCommand = defineCommand({
  command: 'layout',
  describe: 'check the VM layout and print its device map, or derive the guest device tree from it (--adt for XNU, --fdt for Linux)',
  builder: (y) =>
    y
      .option('layout', { type: 'string', describe: 'layout file (default: layouts/t8103-virt.yaml of this package)' })
      .option('adt', { type: 'string', describe: 'base Apple device tree (raw or IM4P), e.g. DeviceTree.j274ap.im4p' })
      .option('fdt', { type: 'string', describe: 'base FDT, e.g. t8103-j274.dtb (scripts/build-t8103-dtb.sh)' })
      .option('output', { alias: 'o', type: 'string', describe: 'output file for --adt / --fdt' })
      .option('cpus', { type: 'number', describe: 'use only the first N CPUs of the layout' })
      .option('ram', { type: 'string', describe: 'RAM size instead of the layout\'s (bytes, 0x..., 2G, 512M)' })
      .option('bootargs', { type: 'string', describe: 'FDT /chosen/bootargs' })
      .option('initrd', { type: 'string', describe: 'FDT: the initrd file, to describe its size in /chosen' })
      .option('check', { type: 'boolean', describe: 'only validate the layout and print the device map (the default without --adt/--fdt)' })
      .conflicts('adt', 'fdt')
      .example('$0 dtree layout --check', 'validate layouts/t8103-virt.yaml and print the address map')
      .example('$0 dtree layout --adt DeviceTree.j274ap.im4p -o out/devicetree', 'the ADT for an XNU guest')
      .example('$0 dtree layout --fdt t8103-j274.dtb --cpus 2 --initrd initrd.cpio -o virt.dtb', 'the FDT for a Linux guest'),
  run: async (argv, ui) => {
    const args = argv as unknown as {
      layout?: string; adt?: string; fdt?: string; output?: string; cpus?: number; ram?: string; bootargs?: string; initrd?: string; check?: boolean;
    };
    const l = layoutFromArgs(args);
    if (!args.adt && !args.fdt) {
      const map = deviceMap(l);
      if (ui.json) ui.emitJson({ layout: l.file, ok: true, cpus: l.cpus.length, deviceMap: map, boot: l.boot });
      else {
        ui.info(`${l.file}: layout ${l.name} is valid (${l.cpus.length} CPUs, ${hex(l.ram.size)} bytes of RAM)`);
        ui.out(table(map.map((e) => [e.name, e.kind, hex(e.base), hex(e.base + e.size), hex(e.size), e.irq !== undefined ? String(e.irq) : '']), ['name', 'kind', 'base', 'end', 'size', 'irq']));
      }
      return 0;
    }
    if (!args.output) throw new UsageError('--adt / --fdt need -o OUT');
    const baseFile = (args.adt ?? args.fdt)!;
    const base = readTreeFile(baseFile).tree;
    let bytes: Uint8Array;
    if (args.adt) {
      if (base.kind !== 'adt') throw new M1prepError(`${baseFile}: --adt needs an Apple device tree, this is an FDT`);
      bytes = serializeAdt(inFile(baseFile, () => deriveAdt(base.root, l)));
    } else {
      if (base.kind !== 'fdt') throw new M1prepError(`${baseFile}: --fdt needs a flattened device tree, this is an ADT`);
      const initrdSize = args.initrd ? BigInt(statSync(args.initrd).size) : undefined;
      bytes = serializeFdt(inFile(baseFile, () => deriveFdt(base.fdt, l, { bootargs: args.bootargs, initrdSize })));
    }
    await writeFileAtomic(args.output, bytes);
    ui.info(`wrote ${args.output} (${bytes.length} bytes, ${l.cpus.length} CPUs)`);
    if (ui.json) ui.emitJson({ output: args.output, size: bytes.length, cpus: l.cpus.length });
    return 0;
  },
});
