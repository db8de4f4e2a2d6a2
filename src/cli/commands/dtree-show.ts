import { M1prepError } from '../../errors.js';
import { defineCommand } from '../command.js';
import { queryAdt } from '../../dtb/adt-views.js';
import { queryFdt } from '../../dtb/fdt-views.js';
import { dumpAdt, dumpFdt } from '../../dtb/dump.js';
import { adtToJson, fdtToJson } from '../../dtb/tree-json.js';
import { treeToJson } from '../../dtb/device-tree.js';
import { readTreeFile, describeTree } from './dtree-io.js';

export const dtreeShowCommand = defineCommand({
  command: '$0 <file> [node]',
  describe: 'show a device tree (raw ADT, IM4P/IMG4-wrapped ADT, or FDT), or the nodes a path or glob matches',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'ADT, IM4P/IMG4 DeviceTree, or .dtb' })
      .positional('node', { type: 'string', describe: 'node path or glob: /arm-io/uart0, /arm-io/*uart*, /**/wdt' })
      .option('depth', { type: 'number', describe: 'levels of children to print below each node (default: all)' })
      .example('$0 dtree DeviceTree.j274ap.im4p /arm-io/uart0', 'one node, with reg translated to physical addresses')
      .example("$0 dtree DeviceTree.j274ap.dtre '/arm-io/*uart*' --depth 0", 'every UART node, no children')
      .example('$0 dtree t8103-j274.dtb --json > tree.json', 'the whole tree as JSON (input of `dtree build`)'),
  run: (args, ui) => {
    const file = args.file as string;
    const opened = readTreeFile(file);
    const t = opened.tree;
    const pattern = (args.node as string | undefined) ?? '/';
    const depth = args.depth as number | undefined;
    if (depth !== undefined && (!Number.isInteger(depth) || depth < 0)) throw new M1prepError(`--depth must be a whole number, got ${depth}`);
    if (pattern === '/' && ui.json) {
      ui.emitJson({ ...treeToJson(t), layers: opened.layers });
      return 0;
    }
    const matches = t.kind === 'adt' ? queryAdt(t.root, pattern) : queryFdt(t.fdt.root, pattern);
    if (matches.length === 0) throw new M1prepError(`${file}: no node matches ${pattern}`);
    if (ui.json) {
      ui.emitJson({
        kind: t.kind,
        layers: opened.layers,
        matches: matches.map((m) => ({
          path: m.path,
          node: t.kind === 'adt' ? adtToJson(m.node as never).root : fdtToJson({ root: m.node as never, memReserve: [], bootCpuId: 0 }).root,
        })),
      });
      return 0;
    }
    ui.info(`${file}: ${describeTree(opened)}`);
    const text = matches.map((m) => (t.kind === 'adt' ? dumpAdt(m as never, { depth }) : dumpFdt(m as never, { depth })));
    ui.out(text.join('\n\n'));
    return 0;
  },
});
