// The device model contract. A device sees only offsets into its own window and knows nothing of
// the CPU backend; interrupts leave a device through an IrqLine.

/** Access width in bytes: 1, 2, 4 or 8. */
export type AccessSize = 1 | 2 | 4 | 8;

export interface MmioDevice {
  /** Short stable name used in traces and the boot summary ("aic", "uart0", "pmgr"...). */
  readonly name: string;
  /** Read `size` bytes at `offset` from the start of the device's window. */
  read(offset: bigint, size: AccessSize, cpu: number): bigint;
  /** Write `value` (already truncated to `size` bytes) at `offset`. */
  write(offset: bigint, size: AccessSize, value: bigint, cpu: number): void;
  /** Back to power-on state. */
  reset(): void;
}

/** One interrupt output of a device: level-triggered. */
export interface IrqLine {
  set(level: boolean): void;
}

/** An IrqLine that goes nowhere (a device whose interrupt the layout does not wire). */
export const unconnectedLine: IrqLine = { set() {} };
