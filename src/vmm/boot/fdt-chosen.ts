import { parseFdt, serializeFdt, type FdtNode } from '../../dtb/fdt.js';
import { fdtStrings } from '../../dtb/fdt-views.js';

// The edits a Linux loader makes to the FDT it hands over: /chosen bootargs and initrd range, and
// it reports the spin-table release address of each CPU (reg = MPIDR).

export interface ChosenEdits {
  bootargs?: string;
  initrd?: { start: bigint; end: bigint };
}

export interface SpinTableCpu {
  mpidr: bigint;
  releaseAddr: bigint;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v);
  return b;
}

function setProp(node: FdtNode, name: string, value: Uint8Array): void {
  const p = node.properties.find((q) => q.name === name);
  if (p) p.value = value;
  else node.properties.push({ name, value });
}

function cellsToBigint(v: Uint8Array): bigint {
  let x = 0n;
  for (let i = 0; i + 4 <= v.length; i += 4) x = (x << 32n) | BigInt(new DataView(v.buffer, v.byteOffset + i, 4).getUint32(0));
  return x;
}

export function patchChosen(fdtBytes: Uint8Array, edits: ChosenEdits): { bytes: Uint8Array; cpus: SpinTableCpu[] } {
  const fdt = parseFdt(fdtBytes);
  let chosen = fdt.root.children.find((c) => c.name === 'chosen');
  if (!chosen) {
    chosen = { name: 'chosen', properties: [], children: [] };
    fdt.root.children.push(chosen);
  }
  if (edits.bootargs !== undefined) setProp(chosen, 'bootargs', new TextEncoder().encode(edits.bootargs + '\0'));
  if (edits.initrd) {
    setProp(chosen, 'linux,initrd-start', u64(edits.initrd.start));
    setProp(chosen, 'linux,initrd-end', u64(edits.initrd.end));
  }
  const cpus: SpinTableCpu[] = [];
  const cpusNode = fdt.root.children.find((c) => c.name === 'cpus');
  for (const cpu of cpusNode?.children ?? []) {
    if (!cpu.name.startsWith('cpu@')) continue;
    if (!fdtStrings(cpu, 'enable-method').includes('spin-table')) continue;
    const reg = cpu.properties.find((p) => p.name === 'reg');
    const rel = cpu.properties.find((p) => p.name === 'cpu-release-addr');
    if (reg && rel) cpus.push({ mpidr: cellsToBigint(reg.value), releaseAddr: cellsToBigint(rel.value) });
  }
  return { bytes: serializeFdt(fdt), cpus };
}
