import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DiskImage } from '../../src/vmm/devices/disk-image.js';

// The disk behind virtio-blk: reads and writes at arbitrary offsets and lengths behave like one
// flat byte array (the model), with the overlay never touching the file and write-through mode
// reaching it.

const work = mkdtempSync(join(tmpdir(), 'm1prep-disk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function image(size: number): { path: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  const path = join(work, `d-${randomBytes(4).toString('hex')}.img`);
  writeFileSync(path, bytes);
  return { path, bytes };
}

const op = (size: number) => fc.record({
  write: fc.boolean(),
  pos: fc.integer({ min: 0, max: size - 1 }),
  len: fc.integer({ min: 0, max: 20_000 }),
  seed: fc.integer({ min: 0, max: 255 }),
});

describe('DiskImage', () => {
  for (const writable of [false, true]) {
    it(`matches a flat byte array under random reads and writes (${writable ? 'write-through' : 'overlay'})`, () => {
      const size = 50_000 + 123; // not a multiple of the 4 KiB overlay chunk
      fc.assert(fc.property(fc.array(op(size), { maxLength: 40 }), (ops) => {
        const { path, bytes } = image(size);
        const model = Buffer.from(bytes);
        const disk = DiskImage.open(path, { writable });
        for (const o of ops) {
          const len = Math.min(o.len, size - o.pos);
          if (o.write) {
            const data = Buffer.alloc(len, o.seed);
            disk.write(BigInt(o.pos), data);
            data.copy(model, o.pos);
          } else {
            const got = new Uint8Array(len);
            disk.read(BigInt(o.pos), got);
            // Buffer.equals: a deep toEqual over tens of kilobytes per step would dominate the run time.
            expect(Buffer.from(got).equals(model.subarray(o.pos, o.pos + len))).toBe(true);
          }
        }
        disk.flush();
        disk.close();
        expect(readFileSync(path).equals(writable ? model : bytes)).toBe(true);
      }), { numRuns: 60 });
    });
  }

  it('rejects accesses past the end and writes to a read-only disk', () => {
    const { path } = image(4096);
    const disk = DiskImage.open(path);
    expect(disk.size).toBe(4096n);
    expect(() => disk.read(4000n, new Uint8Array(200))).toThrow(RangeError);
    expect(() => disk.write(-1n, new Uint8Array(1))).toThrow(RangeError);
    disk.close();
    const ro = DiskImage.open(path, { readOnly: true, writable: true });
    expect(ro.writeThrough).toBe(false);
    expect(() => ro.write(0n, new Uint8Array(1))).toThrow(/read-only/);
    ro.close();
    expect(() => DiskImage.open(join(work, 'missing.img'))).toThrow(/ENOENT/);
  });
});
