import { lstatSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { ImageInputError } from './input-error.js';
import { checkName } from './names.js';
import type { DirNode, TreeNode, Xattr } from './tree.js';

// Reads a source directory into a metadata tree. Symbolic links are recorded as links (their
// target text, never followed); device files, sockets and FIFOs are refused, or skipped when the
// caller asks. Names must be valid UTF-8. Extended attributes come from the reader the caller
// passes (src/host/xattr.ts on Linux), so this file stays free of native calls.

export interface WalkOptions {
  skipSpecial?: boolean;
  /** Called for each skipped special file. */
  onSkip?: (relPath: string, what: string) => void;
  /** Replace every timestamp (SOURCE_DATE_EPOCH), in ns since 1970. */
  fixedTimeNs?: bigint;
  maxDepth?: number;
  /** Extended attributes of a path (not following links); without it, none are read. */
  readXattrs?: (absPath: string) => Xattr[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function specialKind(st: BigIntStats): string | null {
  if (st.isBlockDevice()) return 'block device';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  return null;
}

export function walkDirectory(root: string, opts: WalkOptions = {}): DirNode {
  const maxDepth = opts.maxDepth ?? 4096;
  const meta = (st: BigIntStats, abs: string) => ({
    perm: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeNs: opts.fixedTimeNs ?? st.mtimeNs,
    xattrs: opts.readXattrs && !st.isSymbolicLink() ? opts.readXattrs(abs) : [],
  });
  const rootStat = lstatSync(root, { bigint: true });
  if (!rootStat.isDirectory()) throw new ImageInputError(`${root}: not a directory`);
  const top: DirNode = { kind: 'dir', name: '', children: [], ...meta(rootStat, root) };
  const stack: { dir: DirNode; abs: string; rel: string; depth: number }[] = [{ dir: top, abs: root, rel: '', depth: 0 }];
  while (stack.length > 0) {
    const { dir, abs, rel, depth } = stack.pop()!;
    if (depth >= maxDepth) throw new ImageInputError(`${rel}: directories nested deeper than ${maxDepth}`);
    const raw = readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
    for (const nameBytes of raw) {
      let name: string;
      try {
        name = utf8.decode(nameBytes);
      } catch {
        throw new ImageInputError(`${path.join(abs, nameBytes.toString('latin1'))}: file name is not valid UTF-8`);
      }
      const childAbs = path.join(abs, name);
      const childRel = `${rel}/${name}`;
      checkName(name, childRel);
      const st = lstatSync(childAbs, { bigint: true });
      let node: TreeNode;
      if (st.isSymbolicLink()) {
        node = { kind: 'symlink', name, target: readlinkSync(childAbs, 'utf8'), ...meta(st, childAbs) };
      } else if (st.isDirectory()) {
        const d: DirNode = { kind: 'dir', name, children: [], ...meta(st, childAbs) };
        stack.push({ dir: d, abs: childAbs, rel: childRel, depth: depth + 1 });
        node = d;
      } else if (st.isFile()) {
        node = { kind: 'file', name, size: st.size, content: { kind: 'path', path: childAbs }, ...meta(st, childAbs) };
      } else {
        const what = specialKind(st) ?? 'special file';
        if (opts.skipSpecial) {
          opts.onSkip?.(childRel, what);
          continue;
        }
        throw new ImageInputError(`${childRel}: is a ${what}; images hold only files, directories and symlinks (use --skip-special to leave it out)`);
      }
      dir.children.push(node);
    }
  }
  return top;
}
