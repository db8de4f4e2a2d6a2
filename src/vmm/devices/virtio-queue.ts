import { M1prepError } from '../../errors.js';
import { readU16, readU32, readU64, writeU16, writeU32, type GuestMemory } from './pcie-dma.js';

// The split virtqueue of virtio 1.x (OASIS virtio v1.2, section 2.7), device side: the descriptor
// table, the driver ("available") ring and the device ("used") ring all live in guest RAM, reached
// through GuestMemory. Every walk is bounded by the queue size, so a malicious or broken driver
// (a descriptor loop, an index far ahead) makes the queue fail with VirtioError, never hang.

export class VirtioError extends M1prepError {}

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
const DESC_SIZE = 16;

/** One guest buffer of a chain. */
export interface VirtqBuffer {
  addr: bigint;
  len: number;
}

/** A descriptor chain the driver made available: read-only buffers first, then writable ones. */
export interface VirtqChain {
  head: number;
  readable: VirtqBuffer[];
  writable: VirtqBuffer[];
}

export class SplitVirtqueue {
  /** Guest-physical addresses of the three areas, as the driver programs them. */
  descAddr = 0n;
  driverAddr = 0n;
  deviceAddr = 0n;
  size: number;
  enabled = false;
  private lastAvail = 0;
  private usedIdx = 0;
  private interruptWanted = false;

  constructor(private readonly mem: GuestMemory, readonly maxSize: number) {
    this.size = maxSize;
  }

  reset(): void {
    this.descAddr = this.driverAddr = this.deviceAddr = 0n;
    this.size = this.maxSize;
    this.enabled = false;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.interruptWanted = false;
  }

  /** Checks the driver's configuration when it enables the queue. */
  validate(): void {
    if (this.size === 0 || this.size > this.maxSize || (this.size & (this.size - 1)) !== 0) {
      throw new VirtioError(`virtqueue: size ${this.size} is not a power of two <= ${this.maxSize}`);
    }
    // Alignment from the spec's table in 2.7: descriptors 16, driver ring 2, device ring 4.
    if (this.descAddr % 16n !== 0n || this.driverAddr % 2n !== 0n || this.deviceAddr % 4n !== 0n) {
      throw new VirtioError('virtqueue: misaligned ring address');
    }
    // Touch each area once so that a ring outside RAM fails now rather than mid-request.
    this.mem.view(this.descAddr, DESC_SIZE * this.size);
    this.mem.view(this.driverAddr, 6 + 2 * this.size);
    this.mem.view(this.deviceAddr, 6 + 8 * this.size);
  }

  /** The next available chain, or null when the driver has made nothing new available. */
  pop(): VirtqChain | null {
    if (!this.enabled) return null;
    const availIdx = readU16(this.mem, this.driverAddr + 2n);
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0) return null;
    if (pending > this.size) throw new VirtioError(`virtqueue: driver index ${availIdx} is ${pending} entries ahead of a ${this.size}-entry ring`);
    const slot = this.lastAvail % this.size;
    const head = readU16(this.mem, this.driverAddr + 4n + BigInt(2 * slot));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    return this.walk(head);
  }

  private walk(head: number): VirtqChain {
    const chain: VirtqChain = { head, readable: [], writable: [] };
    let table = this.descAddr;
    let tableSize = this.size;
    let index = head;
    let indirect = false;
    // A chain visits each descriptor of its table at most once; more means a loop.
    for (let steps = 0; ; steps++) {
      if (index >= tableSize) throw new VirtioError(`virtqueue: descriptor ${index} outside a ${tableSize}-entry table`);
      if (steps >= tableSize) throw new VirtioError('virtqueue: descriptor chain loops');
      const d = table + BigInt(DESC_SIZE * index);
      const addr = readU64(this.mem, d);
      const len = readU32(this.mem, d + 8n);
      const flags = readU16(this.mem, d + 12n);
      const next = readU16(this.mem, d + 14n);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // 2.7.5.3: an indirect table replaces the rest of the chain; it cannot nest or chain on.
        if (indirect || flags & VIRTQ_DESC_F_NEXT) throw new VirtioError('virtqueue: nested or chained indirect descriptor');
        if (len === 0 || len % DESC_SIZE !== 0) throw new VirtioError(`virtqueue: indirect table of ${len} bytes`);
        this.mem.view(addr, len);
        table = addr;
        tableSize = len / DESC_SIZE;
        index = 0;
        steps = -1;
        indirect = true;
        continue;
      }
      if (flags & VIRTQ_DESC_F_WRITE) chain.writable.push({ addr, len });
      else if (chain.writable.length > 0) throw new VirtioError('virtqueue: readable descriptor after a writable one');
      else chain.readable.push({ addr, len });
      if (!(flags & VIRTQ_DESC_F_NEXT)) return chain;
      index = next;
    }
  }

  /** Return a chain to the driver with `written` bytes stored in its writable buffers. */
  push(head: number, written: number): void {
    const slot = this.usedIdx % this.size;
    const elem = this.deviceAddr + 4n + BigInt(8 * slot);
    writeU32(this.mem, elem, head);
    writeU32(this.mem, elem + 4n, written);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    // The element must be visible before the index that publishes it (single-threaded here, and
    // the write order matches what a device on real hardware must do).
    writeU16(this.mem, this.deviceAddr + 2n, this.usedIdx);
    if ((readU16(this.mem, this.driverAddr) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0) this.interruptWanted = true;
  }

  /** Whether pushes since the last call asked for an interrupt (and forget it). */
  takeInterrupt(): boolean {
    const w = this.interruptWanted;
    this.interruptWanted = false;
    return w;
  }
}

/** Copy bytes from a list of guest buffers (a chain's readable part), starting `skip` bytes in. */
export function gather(mem: GuestMemory, bufs: readonly VirtqBuffer[], skip: number, dst: Uint8Array): number {
  let done = 0;
  for (const b of bufs) {
    if (done >= dst.length) break;
    if (skip >= b.len) { skip -= b.len; continue; }
    const n = Math.min(b.len - skip, dst.length - done);
    dst.set(mem.view(b.addr + BigInt(skip), n), done);
    done += n;
    skip = 0;
  }
  return done;
}

/** Copy bytes into a list of guest buffers (a chain's writable part), starting `skip` bytes in. */
export function scatter(mem: GuestMemory, bufs: readonly VirtqBuffer[], skip: number, src: Uint8Array): number {
  let done = 0;
  for (const b of bufs) {
    if (done >= src.length) break;
    if (skip >= b.len) { skip -= b.len; continue; }
    const n = Math.min(b.len - skip, src.length - done);
    const addr = b.addr + BigInt(skip);
    mem.view(addr, n).set(src.subarray(done, done + n));
    mem.wrote(addr, n);
    done += n;
    skip = 0;
  }
  return done;
}

export function totalLength(bufs: readonly VirtqBuffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.len;
  return n;
}
