import type { ContentSource } from './tree.js';

// What an image writer produces: the image size and a list of pieces to place in it. Metadata
// pieces carry their bytes; data pieces name a content source and a range of it, which the I/O
// layer streams into place. Everything not covered by a piece reads as zeros.

export interface MetaPiece {
  offset: bigint;
  bytes: Uint8Array;
}

export interface DataPiece {
  offset: bigint;
  length: bigint;
  source: ContentSource;
  sourceOffset: bigint;
}

export interface ImagePlan {
  size: bigint;
  meta: MetaPiece[];
  data: DataPiece[];
  /** Total bytes of file data (for progress). */
  dataBytes: bigint;
}

/** Split `length` bytes of `source` over the runs [offset, byteLength] in order. */
export function dataPieces(source: ContentSource, length: bigint, runs: { offset: bigint; bytes: bigint }[]): DataPiece[] {
  const out: DataPiece[] = [];
  let done = 0n;
  for (const r of runs) {
    if (done >= length) break;
    const n = r.bytes < length - done ? r.bytes : length - done;
    out.push({ offset: r.offset, length: n, source, sourceOffset: done });
    done += n;
  }
  return out;
}

export const MiB = 1n << 20n;

export function roundUp(v: bigint, to: bigint): bigint {
  return ((v + to - 1n) / to) * to;
}

export interface Run {
  start: number;
  count: number;
}

/**
 * Allocate `blocks` blocks from `cursor`: one run, or (forced fragmentation, for testing extent
 * overflow) runs of at most `fragment` blocks with one free block between them.
 */
export function allocateRuns(blocks: number, cursor: number, fragment: number): { runs: Run[]; next: number } {
  const runs: Run[] = [];
  let left = blocks;
  let at = cursor;
  while (left > 0) {
    const n = fragment > 0 ? Math.min(fragment, left) : left;
    runs.push({ start: at, count: n });
    at += n + (fragment > 0 ? 1 : 0);
    left -= n;
  }
  return { runs, next: at };
}
