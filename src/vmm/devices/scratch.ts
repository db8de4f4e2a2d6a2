import type { AccessSize, MmioDevice } from '../device.js';

// A register block whose registers read back what was last written (zero before): for windows a
// guest configures but whose effect the machine does not model, such as the cluster controllers
// (ADT acc-impl-reg, cpm-impl-reg) XNU programs. Unlike an unmapped access, it is named in traces
// and in the boot summary.

export class ScratchRegisters implements MmioDevice {
  private readonly values = new Map<bigint, bigint>();

  constructor(readonly name: string) {}

  read(offset: bigint, size: AccessSize): bigint {
    const v = this.values.get(offset & ~7n) ?? 0n;
    const shift = (offset & 7n) * 8n;
    return size === 8 ? v : (v >> shift) & ((1n << BigInt(size * 8)) - 1n);
  }

  write(offset: bigint, size: AccessSize, value: bigint): void {
    const base = offset & ~7n;
    if (size === 8) {
      this.values.set(base, value);
      return;
    }
    const shift = (offset & 7n) * 8n;
    const mask = ((1n << BigInt(size * 8)) - 1n) << shift;
    const old = this.values.get(base) ?? 0n;
    this.values.set(base, (old & ~mask) | ((value << shift) & mask));
  }

  reset(): void {
    this.values.clear();
  }
}
