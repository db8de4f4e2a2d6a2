import { FormatError } from '../errors.js';
import { openContainer, type OpenedContainer } from '../macho/container.js';
import { looksLikeAdt, parseAdt, serializeAdt } from './adt.js';
import type { DeviceTree } from './edits.js';
import { looksLikeFdt, parseFdt, serializeFdt } from './fdt.js';
import { adtFromJson, adtToJson, fdtFromJson, fdtToJson, type AdtJson, type FdtJson } from './tree-json.js';

export type { DeviceTree } from './edits.js';

// One entry point for "a device tree file": a raw ADT, an IM4P/IMG4-wrapped (and LZFSE
// compressed) ADT, or an FDT blob. Detects which and parses it.

export interface OpenedTree {
  tree: DeviceTree;
  /** Container layers peeled off, outermost first (e.g. ["im4p:dtre", "lzfse"]); [] for raw. */
  layers: string[];
  /** The container, when there was one: `container.repack(bytes)` wraps a new tree the same way. */
  container?: OpenedContainer;
}

/** The ADT is at most a few MiB; refuse to inflate a container beyond this. */
const MAX_TREE = 64 * 1024 * 1024;

export function openDeviceTree(bytes: Uint8Array): OpenedTree {
  if (looksLikeFdt(bytes)) return { tree: { kind: 'fdt', fdt: parseFdt(bytes) }, layers: [] };
  const c = openContainer(bytes, { maxOutput: MAX_TREE });
  if (c.encrypted) throw new FormatError('IM4P', 0n, 'the payload is encrypted');
  const container = c.layers.length > 0 ? { container: c } : {};
  if (c.layers.length > 0 && looksLikeFdt(c.payload)) return { tree: { kind: 'fdt', fdt: parseFdt(c.payload) }, layers: c.layers, ...container };
  if (c.layers.length === 0 && !looksLikeAdt(bytes)) {
    throw new FormatError('device tree', 0n, 'neither an FDT (magic d00dfeed), an IM4P/IMG4 nor an Apple device tree');
  }
  return { tree: { kind: 'adt', root: parseAdt(c.payload) }, layers: c.layers, ...container };
}

export function serializeTree(t: DeviceTree): Uint8Array {
  return t.kind === 'adt' ? serializeAdt(t.root) : serializeFdt(t.fdt);
}

export function treeToJson(t: DeviceTree): AdtJson | FdtJson {
  return t.kind === 'adt' ? adtToJson(t.root) : fdtToJson(t.fdt);
}

/** JSON (as produced by treeToJson, numbers possibly "0x..." strings) back to a tree. */
export function treeFromJson(j: unknown): DeviceTree {
  const kind = (j as { kind?: unknown } | null)?.kind;
  if (kind === 'adt') return { kind: 'adt', root: adtFromJson(j) };
  if (kind === 'fdt') return { kind: 'fdt', fdt: fdtFromJson(j) };
  throw new FormatError('tree JSON', 0n, '"kind" must be "adt" or "fdt"');
}
