// The in-memory metadata tree every image writer consumes. It holds names, modes, owners, dates
// and extended attributes; file contents stay where they are (a source path or inline bytes) and
// are streamed into the image by the I/O layer, so memory grows with metadata, not with data.

export type ContentSource =
  | { kind: 'path'; path: string }
  | { kind: 'inline'; data: Uint8Array };

export interface Xattr {
  name: string;
  value: Uint8Array;
}

interface NodeBase {
  /** One path component, as given (NFC or otherwise); writers convert it to their on-disk form. */
  name: string;
  /** Permission bits only (0o7777); the type bits come from `kind`. */
  perm: number;
  uid: number;
  gid: number;
  /** Modification (and creation/change) time, nanoseconds since 1970-01-01 UTC. */
  mtimeNs: bigint;
  xattrs: Xattr[];
}

export interface FileNode extends NodeBase {
  kind: 'file';
  size: bigint;
  content: ContentSource;
}

export interface DirNode extends NodeBase {
  kind: 'dir';
  children: TreeNode[];
}

export interface SymlinkNode extends NodeBase {
  kind: 'symlink';
  target: string;
}

export type TreeNode = FileNode | DirNode | SymlinkNode;

// POSIX file type bits (sys/stat.h), shared by HFS+ BSD info and APFS inodes.
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export function modeOf(n: TreeNode): number {
  const type = n.kind === 'dir' ? S_IFDIR : n.kind === 'symlink' ? S_IFLNK : S_IFREG;
  return type | (n.perm & 0o7777);
}

/** Depth-first, children in the order given (writers sort as their format requires). */
export function* walkTree(root: DirNode, maxDepth = 4096): Generator<{ node: TreeNode; parent: DirNode | null; depth: number }> {
  const stack: { node: TreeNode; parent: DirNode | null; depth: number }[] = [{ node: root, parent: null, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    yield item;
    if (item.node.kind === 'dir') {
      if (item.depth >= maxDepth) throw new RangeError(`directory nesting deeper than ${maxDepth}`);
      const kids = item.node.children;
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ node: kids[i]!, parent: item.node, depth: item.depth + 1 });
    }
  }
}

/** Byte length of a file's or symlink's data as stored. */
export function dataLength(n: TreeNode): bigint {
  if (n.kind === 'file') return n.size;
  if (n.kind === 'symlink') return BigInt(new TextEncoder().encode(n.target).length);
  return 0n;
}

/** Content of a node for the image: a symlink's target bytes, or the file's source. */
export function contentOf(n: FileNode | SymlinkNode): ContentSource {
  return n.kind === 'file' ? n.content : { kind: 'inline', data: new TextEncoder().encode(n.target) };
}
