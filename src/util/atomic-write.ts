import { promises as fs, openSync, closeSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

// Outputs are written to a temporary name beside the target and renamed into place, so a failure
// never leaves a half-written file.

function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
}

export async function writeFileAtomic(target: string, data: Uint8Array | string | Iterable<Uint8Array>): Promise<void> {
  const tmp = tempNameFor(target);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      await fs.writeFile(tmp, data);
    } else {
      const fh = await fs.open(tmp, 'w');
      try {
        for (const chunk of data) await fh.write(chunk);
      } finally {
        await fh.close();
      }
    }
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export function writeFileAtomicSync(target: string, chunks: Uint8Array | Iterable<Uint8Array>): void {
  const tmp = tempNameFor(target);
  const fd = openSync(tmp, 'w');
  try {
    const list = chunks instanceof Uint8Array ? [chunks] : chunks;
    for (const c of list) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(tmp); } catch { /* not there */ }
    throw e;
  }
}

/**
 * Build a whole output directory atomically: `fill` writes into a fresh temporary directory,
 * which then replaces `target` (the old one is removed only after the new one is complete).
 */
export async function writeDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(path.resolve(target));
  await fs.mkdir(parent, { recursive: true });
  const tmp = await fs.mkdtemp(path.join(parent, `.${path.basename(target)}.tmp-`));
  try {
    // mkdtemp makes the directory 0700; the finished output gets the usual mode under the umask.
    const umask = process.umask();
    await fs.chmod(tmp, 0o777 & ~umask);
    await fill(tmp);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = `${tmp}.old`;
  let hadOld = false;
  try {
    await fs.rename(target, old);
    hadOld = true;
  } catch { /* no previous output */ }
  await fs.rename(tmp, target);
  if (hadOld) await fs.rm(old, { recursive: true, force: true });
}
