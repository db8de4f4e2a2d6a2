import { M1prepError } from '../../errors.js';
import type { RamRegion } from '../cpu/backend.js';

// Bus-master DMA: how a PCIe device reads and writes guest-physical memory. Devices get this
// accessor instead of anything from the CPU backend, so the same device runs under Unicorn, KVM or
// a unit test that hands it a plain buffer.

/** A DMA access outside guest RAM (a bad descriptor address from the guest driver). */
export class DmaError extends M1prepError {}

export interface GuestMemory {
  /** A view of `len` bytes of RAM at `addr`, zero-copy; throws DmaError outside RAM or across regions. */
  view(addr: bigint, len: number): Uint8Array;
  /**
   * Tell the memory that the device wrote [addr, addr + len) through a view, so that engines
   * caching translated code for that range drop it (data read from disk may be code the guest runs).
   */
  wrote(addr: bigint, len: number): void;
}

/** GuestMemory over the machine's RAM regions (the same buffers the CPU backend maps). */
export class RamGuestMemory implements GuestMemory {
  private readonly regions: RamRegion[];

  constructor(
    regions: readonly RamRegion[],
    /** Called after every device write: the machine passes the backend's invalidateCode here. */
    private readonly onWrite: ((addr: bigint, size: bigint) => void) | null = null,
  ) {
    this.regions = [...regions].sort((a, b) => (a.base < b.base ? -1 : 1));
  }

  view(addr: bigint, len: number): Uint8Array {
    for (const r of this.regions) {
      if (addr >= r.base && addr + BigInt(len) <= r.base + r.size) {
        const start = Number(addr - r.base);
        return r.bytes.subarray(start, start + len);
      }
    }
    throw new DmaError(`dma: ${len} bytes at 0x${addr.toString(16)} are not inside guest RAM`);
  }

  wrote(addr: bigint, len: number): void {
    if (this.onWrite && len > 0) this.onWrite(addr, BigInt(len));
  }
}

/**
 * Little-endian scalar helpers over GuestMemory for ring metadata (indices, lengths). They do not
 * call wrote(): ring bookkeeping is never code, and invalidating per index update would be costly.
 */
export function readU16(mem: GuestMemory, addr: bigint): number {
  const b = mem.view(addr, 2);
  return b[0]! | (b[1]! << 8);
}

export function readU32(mem: GuestMemory, addr: bigint): number {
  const b = mem.view(addr, 4);
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

export function readU64(mem: GuestMemory, addr: bigint): bigint {
  return (BigInt(readU32(mem, addr + 4n)) << 32n) | BigInt(readU32(mem, addr));
}

export function writeU16(mem: GuestMemory, addr: bigint, value: number): void {
  const b = mem.view(addr, 2);
  b[0] = value & 0xff;
  b[1] = (value >>> 8) & 0xff;
}

export function writeU32(mem: GuestMemory, addr: bigint, value: number): void {
  const b = mem.view(addr, 4);
  b[0] = value & 0xff;
  b[1] = (value >>> 8) & 0xff;
  b[2] = (value >>> 16) & 0xff;
  b[3] = (value >>> 24) & 0xff;
}
