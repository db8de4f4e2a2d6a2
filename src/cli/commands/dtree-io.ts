import { readFileSync } from 'node:fs';
import { inFile } from '../../errors.js';
import { openDeviceTree, type OpenedTree } from '../../dtb/device-tree.js';

// File reading shared by the dtree subcommands (the dtb library itself does no I/O).

export function readTreeFile(file: string): OpenedTree {
  const bytes = new Uint8Array(readFileSync(file));
  return inFile(file, () => openDeviceTree(bytes));
}

export function describeTree(t: OpenedTree): string {
  const kind = t.tree.kind === 'adt' ? 'Apple device tree (ADT)' : 'flattened device tree (FDT v17)';
  return t.layers.length ? `${kind} inside ${t.layers.join(' > ')}` : kind;
}
