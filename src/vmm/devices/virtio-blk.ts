import type { DiskImage } from './disk-image.js';
import type { GuestMemory } from './pcie-dma.js';
import { scatter, totalLength, type SplitVirtqueue, type VirtqBuffer, VirtioError, gather } from './virtio-queue.js';
import type { VirtioDevice } from './virtio-pci.js';

// virtio-blk (OASIS virtio v1.2, section 5.2): one request queue; each request is a 16-byte header
// (type, reserved, sector) in the readable part of the chain, data buffers, and a one-byte status
// at the very end of the writable part. Requests are served synchronously on the notify, straight
// between the disk and guest RAM (no bounce buffer for reads).

export const VIRTIO_ID_BLOCK = 2;
const PCI_CLASS_STORAGE_OTHER = 0x018000;

// Feature bits (5.2.3).
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;

// Request types and status values (5.2.6).
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
const VIRTIO_BLK_ID_BYTES = 20;

const SECTOR = 512;
const HEADER = 16;
export const VIRTIO_BLK_QUEUE_SIZE = 256;
/** struct virtio_blk_config up to and including blk_size (offsets 0..23). */
const CONFIG_SIZE = 24;

export interface VirtioBlkStats {
  reads: number;
  writes: number;
  flushes: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly classCode = PCI_CLASS_STORAGE_OTHER;
  readonly features: bigint;
  readonly queueSizes = [VIRTIO_BLK_QUEUE_SIZE];
  readonly config = new Uint8Array(CONFIG_SIZE);
  readonly stats: VirtioBlkStats = { reads: 0, writes: 0, flushes: 0, bytesRead: 0, bytesWritten: 0, errors: 0 };
  private readonly sectors: bigint;
  private readonly id: Uint8Array;

  constructor(readonly disk: DiskImage, serial = 'm1prep-disk') {
    this.sectors = disk.size / BigInt(SECTOR);
    this.features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | (disk.readOnly ? VIRTIO_BLK_F_RO : 0n);
    const v = new DataView(this.config.buffer);
    v.setBigUint64(0, this.sectors, true); // capacity, in 512-byte sectors
    v.setUint32(8, 0, true); // size_max: not offered
    v.setUint32(12, VIRTIO_BLK_QUEUE_SIZE - 2, true); // seg_max: a chain also holds header and status
    v.setUint32(20, SECTOR, true); // blk_size
    this.id = new TextEncoder().encode(serial).subarray(0, VIRTIO_BLK_ID_BYTES);
  }

  reset(): void {}

  processQueue(_queue: number, vq: SplitVirtqueue, mem: GuestMemory): void {
    // Bounded by the ring: pop() refuses an index more than a ring ahead.
    for (let chain = vq.pop(); chain; chain = vq.pop()) {
      const written = this.request(mem, chain.readable, chain.writable);
      vq.push(chain.head, written);
    }
  }

  /** Serve one request; returns the number of bytes written into the chain's writable buffers. */
  private request(mem: GuestMemory, readable: VirtqBuffer[], writable: VirtqBuffer[]): number {
    const header = new Uint8Array(HEADER);
    if (gather(mem, readable, 0, header) < HEADER) throw new VirtioError('virtio-blk: request shorter than its header');
    const writableLen = totalLength(writable);
    if (writableLen < 1) throw new VirtioError('virtio-blk: request without a status byte');
    const h = new DataView(header.buffer);
    const type = h.getUint32(0, true);
    const sector = h.getBigUint64(8, true);
    let status = VIRTIO_BLK_S_OK;
    let dataWritten = 0;
    try {
      switch (type) {
        case VIRTIO_BLK_T_IN: {
          const len = writableLen - 1;
          this.checkRange(sector, len);
          this.transfer(mem, writable, len, sector, 'in');
          dataWritten = len;
          this.stats.reads++;
          this.stats.bytesRead += len;
          break;
        }
        case VIRTIO_BLK_T_OUT: {
          if (this.disk.readOnly) { status = VIRTIO_BLK_S_IOERR; break; }
          const len = totalLength(readable) - HEADER;
          this.checkRange(sector, len);
          this.transfer(mem, readable, len, sector, 'out');
          this.stats.writes++;
          this.stats.bytesWritten += len;
          break;
        }
        case VIRTIO_BLK_T_FLUSH:
          this.disk.flush();
          this.stats.flushes++;
          break;
        case VIRTIO_BLK_T_GET_ID: {
          const id = new Uint8Array(Math.min(VIRTIO_BLK_ID_BYTES, writableLen - 1));
          id.set(this.id.subarray(0, id.length));
          dataWritten = scatter(mem, writable, 0, id);
          break;
        }
        default:
          status = VIRTIO_BLK_S_UNSUPP;
      }
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      status = VIRTIO_BLK_S_IOERR;
    }
    if (status !== VIRTIO_BLK_S_OK) this.stats.errors++;
    // The status byte is the last writable byte of the chain.
    scatter(mem, writable, writableLen - 1, Uint8Array.of(status));
    return dataWritten + 1;
  }

  private checkRange(sector: bigint, len: number): void {
    if (len % SECTOR !== 0) throw new RangeError(`virtio-blk: ${len} bytes is not whole sectors`);
    if (sector + BigInt(len / SECTOR) > this.sectors) throw new RangeError(`virtio-blk: sector ${sector} + ${len / SECTOR} past the end`);
  }

  /** Move `len` data bytes between the disk at `sector` and the chain's buffers (the header skipped on out). */
  private transfer(mem: GuestMemory, bufs: VirtqBuffer[], len: number, sector: bigint, dir: 'in' | 'out'): void {
    let skip = dir === 'out' ? HEADER : 0;
    let pos = sector * BigInt(SECTOR);
    let left = len;
    for (const b of bufs) {
      if (left === 0) break;
      if (skip >= b.len) { skip -= b.len; continue; }
      const n = Math.min(b.len - skip, left);
      const addr = b.addr + BigInt(skip);
      const view = mem.view(addr, n);
      if (dir === 'in') {
        this.disk.read(pos, view);
        mem.wrote(addr, n);
      } else {
        this.disk.write(pos, view);
      }
      pos += BigInt(n);
      left -= n;
      skip = 0;
    }
  }
}
