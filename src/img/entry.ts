import { ImageInputError } from './input-error.js';
// What the readers report for each file-system object (the `ls` and `cat` model).

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

export interface FsEntry {
  /** Absolute path inside the volume, '/'-separated, names as stored. */
  path: string;
  name: string;
  kind: EntryKind;
  /** Full st_mode (type and permission bits). */
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimeNs: bigint;
  /** Catalog node ID (HFS+) or inode number (APFS). */
  id: bigint;
  /** Symbolic link target. */
  target?: string;
}

export interface FsVolume {
  readonly format: 'hfsplus' | 'hfsx' | 'apfs';
  readonly label: string;
  readonly caseSensitive: boolean;
  stat(path: string): FsEntry;
  /** Children of a directory, in on-disk order. */
  list(path: string): FsEntry[];
  /** File contents in chunks (a symlink yields its target). */
  read(path: string): Iterable<Uint8Array>;
  /** The same, for an entry this volume returned (no path lookup). */
  readEntry(entry: FsEntry): Iterable<Uint8Array>;
  /** Every entry below `path`, depth first (the root itself excluded). */
  walk(path?: string): Iterable<FsEntry>;
}

export function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '' && s !== '.');
}

/** Follow symbolic links inside the volume until a non-link (at most 40 hops, like Linux). */
export function resolveLinks(vol: FsVolume, path: string): string {
  let parts = splitPath(path);
  for (let hops = 0; hops <= 40; hops++) {
    let changed = false;
    for (let i = 1; i <= parts.length; i++) {
      const e = vol.stat('/' + parts.slice(0, i).join('/'));
      if (e.kind === 'symlink' && e.target !== undefined) {
        const base = e.target.startsWith('/') ? [] : parts.slice(0, i - 1);
        const joined: string[] = [];
        for (const p of [...base, ...splitPath(e.target), ...parts.slice(i)]) {
          if (p === '..') joined.pop();
          else joined.push(p);
        }
        parts = joined;
        changed = true;
        break;
      }
    }
    if (!changed) return '/' + parts.join('/');
  }
  throw new ImageInputError(`${path}: too many levels of symbolic links`);
}
