import { M1prepError } from '../errors.js';
import type { AccessSize, MmioDevice } from './device.js';

// The physical address map of the machine: RAM regions and MMIO windows. Overlapping ranges are
// rejected when they are added, so a layout mistake cannot silently shadow a device.

export class BusError extends M1prepError {}

export interface MmioMapping {
  base: bigint;
  size: bigint;
  device: MmioDevice;
}

export interface BusAccessEvent {
  kind: 'read' | 'write';
  addr: bigint;
  size: AccessSize;
  value: bigint;
  device: string | null;
  cpu: number;
}

export class Bus {
  private readonly mappings: MmioMapping[] = [];
  /** Reads/writes to addresses with no device: counted, read as zero (faults are the backend's choice). */
  unmappedAccesses = 0;
  /** Per-device access counts for the boot summary. */
  readonly touched = new Map<string, number>();
  /** Optional observer for --trace mmio. */
  onAccess: ((e: BusAccessEvent) => void) | null = null;

  add(base: bigint, size: bigint, device: MmioDevice): void {
    if (size <= 0n) throw new BusError(`bus: ${device.name}: empty window at 0x${base.toString(16)}`);
    for (const m of this.mappings) {
      if (base < m.base + m.size && m.base < base + size) {
        throw new BusError(
          `bus: ${device.name} [0x${base.toString(16)}, 0x${(base + size).toString(16)}) overlaps ${m.device.name} [0x${m.base.toString(16)}, 0x${(m.base + m.size).toString(16)})`,
        );
      }
    }
    this.mappings.push({ base, size, device });
    this.mappings.sort((a, b) => (a.base < b.base ? -1 : 1));
  }

  find(addr: bigint): MmioMapping | undefined {
    // Binary search: the map is small, but this is on the hot path of every MMIO exit.
    let lo = 0, hi = this.mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.mappings[mid]!;
      if (addr < m.base) hi = mid - 1;
      else if (addr >= m.base + m.size) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  read(addr: bigint, size: AccessSize, cpu = 0): bigint {
    const m = this.find(addr);
    let value = 0n;
    if (m) {
      value = m.device.read(addr - m.base, size, cpu);
      this.touched.set(m.device.name, (this.touched.get(m.device.name) ?? 0) + 1);
    } else {
      this.unmappedAccesses++;
    }
    this.onAccess?.({ kind: 'read', addr, size, value, device: m?.device.name ?? null, cpu });
    return value;
  }

  write(addr: bigint, size: AccessSize, value: bigint, cpu = 0): void {
    const m = this.find(addr);
    const v = size === 8 ? BigInt.asUintN(64, value) : value & ((1n << BigInt(size * 8)) - 1n);
    if (m) {
      m.device.write(addr - m.base, size, v, cpu);
      this.touched.set(m.device.name, (this.touched.get(m.device.name) ?? 0) + 1);
    } else {
      this.unmappedAccesses++;
    }
    this.onAccess?.({ kind: 'write', addr, size, value: v, device: m?.device.name ?? null, cpu });
  }

  list(): readonly MmioMapping[] {
    return this.mappings;
  }

  reset(): void {
    for (const m of this.mappings) m.device.reset();
  }
}
