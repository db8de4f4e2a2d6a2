import { closeSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ImageInputError } from './input-error.js';
import type { DataPiece, ImagePlan } from './plan.js';

// Executes an image plan: a temporary file beside the target is sized, metadata is written,
// file contents are streamed from their sources, and only a complete image is renamed into
// place. Small files laid out back to back are gathered in a staging buffer and written with one
// call; big ones go through in 1 MiB chunks. All-zero chunks are left as holes.

const CHUNK = 1 << 20;
const STAGE = 4 << 20;

export interface WriteProgress {
  (doneBytes: bigint, totalBytes: bigint): void;
}

function pwriteAll(fd: number, buf: Uint8Array, pos: bigint): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, Number(pos) + off);
}

const zero = Buffer.alloc(CHUNK);

function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += CHUNK) {
    const part = b.subarray(o, Math.min(b.length, o + CHUNK));
    if (!part.equals(zero.subarray(0, part.length))) return false;
  }
  return true;
}

/** Reads source ranges, keeping the last source file open. */
class SourceReader {
  private fd = -1;
  private file = '';

  readInto(d: DataPiece, from: bigint, into: Buffer, at: number, length: number): void {
    if (d.source.kind === 'inline') {
      into.set(d.source.data.subarray(Number(from), Number(from) + length), at);
      return;
    }
    if (this.file !== d.source.path) {
      this.close();
      this.fd = openSync(d.source.path, 'r');
      this.file = d.source.path;
    }
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, into, at + got, length - got, Number(from) + got);
      if (n === 0) throw new ImageInputError(`${d.source.path}: file shrank while the image was being built`);
      got += n;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.file = '';
  }
}

export function writePlan(plan: ImagePlan, target: string, progress?: WriteProgress): void {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'w');
  const src = new SourceReader();
  try {
    ftruncateSync(fd, Number(plan.size));
    const stage = Buffer.alloc(STAGE);
    let stageAt = 0n; // image offset of stage[0]
    let stageLen = 0;
    const flush = () => {
      if (stageLen > 0) {
        for (let o = 0; o < stageLen; o += CHUNK) {
          const part = stage.subarray(o, Math.min(stageLen, o + CHUNK));
          if (!isZero(part)) pwriteAll(fd, part, stageAt + BigInt(o));
        }
      }
      stageLen = 0;
    };
    const buf = Buffer.allocUnsafe(CHUNK);
    let done = 0n;
    for (const d of plan.data) {
      const len = Number(d.length);
      const gap = d.offset - (stageAt + BigInt(stageLen));
      if (len <= STAGE / 4 && stageLen > 0 && gap >= 0n && gap < BigInt(STAGE) && stageLen + Number(gap) + len <= STAGE) {
        // Contiguous enough: the gap (block padding) is zero-filled in the stage.
        stage.fill(0, stageLen, stageLen + Number(gap));
        src.readInto(d, d.sourceOffset, stage, stageLen + Number(gap), len);
        stageLen += Number(gap) + len;
      } else if (len <= STAGE / 4) {
        flush();
        stageAt = d.offset;
        src.readInto(d, d.sourceOffset, stage, 0, len);
        stageLen = len;
      } else {
        flush();
        let left = d.length;
        let from = d.sourceOffset;
        let to = d.offset;
        while (left > 0n) {
          const want = left < BigInt(CHUNK) ? Number(left) : CHUNK;
          src.readInto(d, from, buf, 0, want);
          const chunk = buf.subarray(0, want);
          if (!isZero(chunk)) pwriteAll(fd, chunk, to);
          left -= BigInt(want);
          from += BigInt(want);
          to += BigInt(want);
          done += BigInt(want);
          progress?.(done, plan.dataBytes);
        }
        continue;
      }
      done += d.length;
      progress?.(done, plan.dataBytes);
    }
    flush();
    src.close();
    // Metadata last: a staged run may span zero padding next to it, never over it afterwards.
    for (const m of plan.meta) pwriteAll(fd, m.bytes, m.offset);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    src.close();
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* not there */ }
    throw e;
  }
}
