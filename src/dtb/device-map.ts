import type { DeviceMapEntry, VmLayout } from './layout-types.js';
import type { YamlPath } from './layout-source.js';

// The physical address map of the virtual machine, derived from the layout: what the VMM maps on
// its bus, and what the layout checker tests for overlaps.

export interface PlacedWindow {
  entry: DeviceMapEntry;
  /** Where the window is written in the layout file. */
  path: YamlPath;
}

export function placedWindows(l: VmLayout): PlacedWindow[] {
  const out: PlacedWindow[] = [
    { entry: { name: 'ram', kind: 'ram', ...l.ram }, path: ['ram'] },
    { entry: { name: 'aic', kind: 'aic', base: l.aic.base, size: l.aic.size }, path: ['aic'] },
    { entry: { name: 'uart0', kind: 'uart', base: l.uart0.base, size: l.uart0.size, irq: l.uart0.irq }, path: ['uart0'] },
    { entry: { name: 'pmgr', kind: 'pmgr', base: l.pmgr.base, size: l.pmgr.size }, path: ['pmgr'] },
    { entry: { name: 'wdt', kind: 'watchdog', base: l.watchdog.base, size: l.watchdog.size, irq: l.watchdog.irq }, path: ['watchdog'] },
  ];
  l.clusters.forEach((c, ci) => {
    if (c.accImplReg) out.push({ entry: { name: `cluster${c.id}-acc`, kind: 'cluster-acc', ...c.accImplReg, cluster: c.id }, path: ['clusters', ci, 'accImplReg'] });
    if (c.cpmImplReg) out.push({ entry: { name: `cluster${c.id}-cpm`, kind: 'cluster-cpm', ...c.cpmImplReg, cluster: c.id }, path: ['clusters', ci, 'cpmImplReg'] });
    c.cpus.forEach((cpu, k) => {
      out.push({ entry: { name: `cpu${cpu}-impl`, kind: 'cpu-impl', ...l.cpus[cpu]!.implReg, cpu }, path: ['clusters', ci, 'cpus', k, 'implReg'] });
    });
  });
  const p = l.pcie;
  out.push(
    { entry: { name: 'pcie-ecam', kind: 'pcie-ecam', ...p.ecam }, path: ['pcie', 'ecam'] },
    { entry: { name: 'pcie-io', kind: 'pcie-io', base: p.io.base, size: p.io.size }, path: ['pcie', 'io'] },
    { entry: { name: 'pcie-mmio32', kind: 'pcie-mmio32', base: p.mmio32.base, size: p.mmio32.size }, path: ['pcie', 'mmio32'] },
    { entry: { name: 'pcie-mmio64', kind: 'pcie-mmio64', base: p.mmio64.base, size: p.mmio64.size }, path: ['pcie', 'mmio64'] },
  );
  return out;
}

/** Every window of the machine (RAM included, kind "ram"), sorted by base address. */
export function deviceMap(layout: VmLayout): DeviceMapEntry[] {
  return placedWindows(layout)
    .map((w) => w.entry)
    .sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
}
