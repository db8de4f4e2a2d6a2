import { closeSync, ftruncateSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ImageInputError } from './input-error.js';
import type { ImagePlan } from './plan.js';

// Executes an image plan: a temporary file beside the target is sized, metadata is written,
// file contents are streamed from their sources in 1 MiB chunks (all-zero chunks are left as
// holes), and only a complete image is renamed into place.

const CHUNK = 1 << 20;

export interface WriteProgress {
  (doneBytes: bigint, totalBytes: bigint): void;
}

function pwriteAll(fd: number, buf: Uint8Array, pos: bigint): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, Number(pos) + off);
}

export function writePlan(plan: ImagePlan, target: string, progress?: WriteProgress): void {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'w');
  let srcFd = -1;
  let srcPath = '';
  try {
    ftruncateSync(fd, Number(plan.size));
    for (const m of plan.meta) pwriteAll(fd, m.bytes, m.offset);
    const buf = Buffer.allocUnsafe(CHUNK);
    const zero = Buffer.alloc(CHUNK);
    let done = 0n;
    for (const d of plan.data) {
      if (d.source.kind === 'inline') {
        const slice = d.source.data.subarray(Number(d.sourceOffset), Number(d.sourceOffset + d.length));
        pwriteAll(fd, slice, d.offset);
        done += d.length;
        continue;
      }
      if (srcPath !== d.source.path) {
        if (srcFd >= 0) closeSync(srcFd);
        srcFd = -1;
        srcFd = openSync(d.source.path, 'r');
        srcPath = d.source.path;
      }
      let left = d.length;
      let from = d.sourceOffset;
      let to = d.offset;
      while (left > 0n) {
        const want = left < BigInt(CHUNK) ? Number(left) : CHUNK;
        let got = 0;
        while (got < want) {
          const n = readSync(srcFd, buf, got, want - got, Number(from) + got);
          if (n === 0) throw new ImageInputError(`${d.source.path}: file shrank while the image was being built`);
          got += n;
        }
        const chunk = buf.subarray(0, want);
        if (!(want === CHUNK ? chunk.equals(zero) : chunk.equals(zero.subarray(0, want)))) pwriteAll(fd, chunk, to);
        left -= BigInt(want);
        from += BigInt(want);
        to += BigInt(want);
        done += BigInt(want);
        progress?.(done, plan.dataBytes);
      }
    }
    if (srcFd >= 0) closeSync(srcFd);
    srcFd = -1;
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    if (srcFd >= 0) closeSync(srcFd);
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* not there */ }
    throw e;
  }
}
