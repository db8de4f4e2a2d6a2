import * as fs from 'node:fs';
import { HostError, UsageError } from '../../errors.js';

// A raw disk image behind a virtual block device. The input file is never modified unless the user
// asked for it (`--disk-writable`): guest writes land in an in-memory copy-on-write overlay of
// 4 KiB chunks, so a verification run leaves the image byte-identical and costs memory only for
// what the guest actually wrote.

const CHUNK = 4096;

export interface DiskOptions {
  /** Write guest writes through to the file instead of the overlay. */
  writable?: boolean;
  /** Present the disk to the guest as read-only (virtio-blk VIRTIO_BLK_F_RO). */
  readOnly?: boolean;
}

export class DiskImage {
  /** Bytes the guest sees (the file's size). */
  readonly size: bigint;
  readonly readOnly: boolean;
  readonly writeThrough: boolean;
  private readonly overlay = new Map<number, Uint8Array>();
  private fd: number | null;

  private constructor(readonly path: string, fd: number, size: bigint, opts: DiskOptions) {
    this.fd = fd;
    this.size = size;
    this.readOnly = opts.readOnly ?? false;
    this.writeThrough = (opts.writable ?? false) && !this.readOnly;
  }

  static open(path: string, opts: DiskOptions = {}): DiskImage {
    const writeThrough = (opts.writable ?? false) && !(opts.readOnly ?? false);
    let fd: number;
    try {
      fd = fs.openSync(path, writeThrough ? 'r+' : 'r');
    } catch (e) {
      throw new UsageError(`disk ${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile() && !st.isBlockDevice()) {
      fs.closeSync(fd);
      throw new HostError(`disk ${path}: not a regular file`);
    }
    return new DiskImage(path, fd, st.size, opts);
  }

  /** Bytes held by the overlay (what the guest wrote, rounded to chunks). */
  get overlayBytes(): number {
    return this.overlay.size * CHUNK;
  }

  private check(pos: bigint, len: number): void {
    if (pos < 0n || pos + BigInt(len) > this.size) {
      throw new RangeError(`disk ${this.path}: ${len} bytes at ${pos} past the end (${this.size})`);
    }
  }

  private readFile(pos: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = fs.readSync(this.fd!, dst, done, dst.length - done, pos + done);
      if (n === 0) { dst.fill(0, done); return; } // the file shrank under us: read as zeros
      done += n;
    }
  }

  /** Read `dst.length` bytes at byte offset `pos` (the overlay first, then the file). */
  read(pos: bigint, dst: Uint8Array): void {
    this.check(pos, dst.length);
    const start = Number(pos);
    if (this.overlay.size === 0) { this.readFile(start, dst); return; }
    let done = 0;
    while (done < dst.length) {
      const at = start + done;
      const chunk = Math.floor(at / CHUNK);
      const inChunk = at - chunk * CHUNK;
      const saved = this.overlay.get(chunk);
      if (saved) {
        const n = Math.min(CHUNK - inChunk, dst.length - done);
        dst.set(saved.subarray(inChunk, inChunk + n), done);
        done += n;
        continue;
      }
      // Extend the file read over every following chunk the overlay does not hold.
      let end = (chunk + 1) * CHUNK;
      while (end < start + dst.length && !this.overlay.has(end / CHUNK)) end += CHUNK;
      const n = Math.min(end, start + dst.length) - at;
      this.readFile(at, dst.subarray(done, done + n));
      done += n;
    }
  }

  /** Write `src` at byte offset `pos`: to the file when write-through, else to the overlay. */
  write(pos: bigint, src: Uint8Array): void {
    this.check(pos, src.length);
    if (this.readOnly) throw new RangeError(`disk ${this.path}: read-only`);
    const start = Number(pos);
    if (this.writeThrough) {
      let done = 0;
      while (done < src.length) done += fs.writeSync(this.fd!, src, done, src.length - done, start + done);
      return;
    }
    let done = 0;
    while (done < src.length) {
      const at = start + done;
      const chunk = Math.floor(at / CHUNK);
      const inChunk = at - chunk * CHUNK;
      const n = Math.min(CHUNK - inChunk, src.length - done);
      let saved = this.overlay.get(chunk);
      if (!saved) {
        saved = new Uint8Array(CHUNK);
        // A partial chunk keeps the file's other bytes (the last chunk may run past the end).
        if (n < CHUNK) {
          const avail = Math.min(CHUNK, Number(this.size) - chunk * CHUNK);
          this.readFile(chunk * CHUNK, saved.subarray(0, avail));
        }
        this.overlay.set(chunk, saved);
      }
      saved.set(src.subarray(done, done + n), inChunk);
      done += n;
    }
  }

  /** Make written data durable (write-through only; the overlay lives and dies with the VM). */
  flush(): void {
    if (this.writeThrough && this.fd !== null) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
