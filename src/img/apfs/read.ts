import { FormatError } from '../../errors.js';
import type { FsEntry, FsVolume } from '../entry.js';
import { splitPath } from '../entry.js';
import { ImageInputError } from '../input-error.js';
import { view, type ByteSource } from '../source.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../tree.js';
import { objectChecksumOk } from './checksum.js';
import * as F from './format.js';
import { foldName } from './names.js';

// APFS reader over a positional source: finds the newest valid checkpoint superblock, the first
// volume through the container object map, and reads the volume's file-system tree through its
// object map. Every object read is checksum-verified.

interface Inode {
  id: bigint;
  parent: bigint;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  size: bigint;
  bsdFlags: number;
  offset: bigint;
}

interface Dirent { name: string; id: bigint }
interface Extent { logical: bigint; length: bigint; phys: bigint }

const MAX_NODES = 1 << 22;
const CHUNK = 1 << 20;
const UF_COMPRESSED = 0x20;
const dec = new TextDecoder();

export class ApfsVolume implements FsVolume {
  readonly format = 'apfs' as const;
  readonly label: string;
  readonly caseSensitive: boolean;
  readonly role: number;
  readonly blockSize: number;
  private readonly xid: bigint;
  private readonly inodes = new Map<bigint, Inode>();
  private readonly dirents = new Map<bigint, Dirent[]>();
  private readonly extents = new Map<bigint, Extent[]>();
  private readonly links = new Map<bigint, string>();

  constructor(private readonly src: ByteSource) {
    const b0 = this.readRaw(0n, 4096);
    const d0 = view(b0);
    if (d0.getUint32(32, true) !== F.NX_MAGIC) throw new FormatError('APFS container superblock', 32n, "no 'NXSB' magic");
    const bs = d0.getUint32(36, true);
    if (bs < 4096 || bs > 65536 || (bs & (bs - 1)) !== 0) throw new FormatError('APFS container superblock', 36n, `bad block size ${bs}`);
    this.blockSize = bs;
    const nx = this.latestSuperblock(b0);
    const n = view(nx);
    this.xid = n.getBigUint64(16, true);
    const omap = this.readObject(n.getBigUint64(160, true), 'container object map', F.OBJECT_TYPE_OMAP);
    const containerMap = this.readOmap(omap);
    let volOid = 0n;
    for (let i = 0; i < F.NX_MAX_FILE_SYSTEMS && !volOid; i++) volOid = n.getBigUint64(184 + 8 * i, true);
    if (!volOid) throw new FormatError('APFS container superblock', 184n, 'no volume');
    const vsbAddr = containerMap.get(volOid);
    if (vsbAddr === undefined) throw new FormatError('APFS container object map', 0n, `volume oid ${volOid} is not mapped`);
    const vsb = this.readObject(vsbAddr, 'APFS volume superblock', F.OBJECT_TYPE_FS);
    const v = view(vsb);
    if (v.getUint32(32, true) !== F.APFS_MAGIC) throw new FormatError('APFS volume superblock', vsbAddr * BigInt(bs) + 32n, "no 'APSB' magic");
    const incompat = v.getBigUint64(56, true);
    this.caseSensitive = (incompat & F.APFS_INCOMPAT_CASE_INSENSITIVE) === 0n;
    const hashed = (incompat & (F.APFS_INCOMPAT_CASE_INSENSITIVE | F.APFS_INCOMPAT_NORMALIZATION_INSENSITIVE)) !== 0n;
    const nameBytes = vsb.subarray(704, 960);
    const nul = nameBytes.indexOf(0);
    this.label = dec.decode(nameBytes.subarray(0, nul < 0 ? nameBytes.length : nul));
    this.role = v.getUint16(964, true);
    const volMap = this.readOmap(this.readObject(v.getBigUint64(128, true), 'volume object map', F.OBJECT_TYPE_OMAP));
    const rootOid = v.getBigUint64(136, true);
    this.walkTree(rootOid, volMap, (key, val, at) => this.record(key, val, at, hashed));
    if (!this.inodes.has(F.ROOT_DIR_INO_NUM)) throw new FormatError('APFS file-system tree', 0n, 'no root directory inode');
  }

  private readRaw(offset: bigint, length: number): Uint8Array {
    return this.src.read(offset, length);
  }

  private readBlock(paddr: bigint): Uint8Array {
    if (paddr <= 0n || paddr * BigInt(this.blockSize) + BigInt(this.blockSize) > this.src.size) {
      throw new FormatError('APFS object', paddr * BigInt(this.blockSize), `block ${paddr} is outside the container`);
    }
    return this.readRaw(paddr * BigInt(this.blockSize), this.blockSize);
  }

  /** A physical object with a valid checksum and the expected type. */
  private readObject(paddr: bigint, what: string, type: number): Uint8Array {
    const b = this.readBlock(paddr);
    const at = paddr * BigInt(this.blockSize);
    if (!objectChecksumOk(b)) throw new FormatError(what, at, 'bad Fletcher-64 checksum');
    const t = view(b).getUint32(24, true) & F.OBJECT_TYPE_MASK;
    if (t !== type) throw new FormatError(what, at + 24n, `object type 0x${t.toString(16)}, expected 0x${type.toString(16)}`);
    return b;
  }

  /** The newest valid container superblock in the checkpoint descriptor area (block 0 if none). */
  private latestSuperblock(b0: Uint8Array): Uint8Array {
    const d = view(b0);
    let best = objectChecksumOk(b0) ? b0 : null;
    const descBlocks = d.getUint32(104, true);
    const descBase = d.getBigUint64(112, true);
    if ((descBlocks >>> 31) === 0 && descBlocks <= 65536 && descBase > 0n) {
      for (let i = 0; i < descBlocks; i++) {
        const addr = descBase + BigInt(i);
        if ((addr + 1n) * BigInt(this.blockSize) > this.src.size) break;
        const b = this.readBlock(addr);
        const dv = view(b);
        if (dv.getUint32(32, true) !== F.NX_MAGIC || (dv.getUint32(24, true) & F.OBJECT_TYPE_MASK) !== F.OBJECT_TYPE_NX_SUPERBLOCK) continue;
        if (!objectChecksumOk(b)) continue;
        if (!best || dv.getBigUint64(16, true) > view(best).getBigUint64(16, true)) best = b;
      }
    }
    if (!best) throw new FormatError('APFS container superblock', 0n, 'bad checksum and no valid checkpoint copy');
    return best;
  }

  /** All current mappings of an object map (highest xid not after the checkpoint). */
  private readOmap(omap: Uint8Array): Map<bigint, bigint> {
    const treeOid = view(omap).getBigUint64(48, true);
    const best = new Map<bigint, { xid: bigint; paddr: bigint }>();
    this.walkTree(treeOid, null, (key, val, at) => {
      if (key.length < 16 || val.length < 16) throw new FormatError('object map record', at, 'too short');
      const k = view(key);
      const oid = k.getBigUint64(0, true);
      const xid = k.getBigUint64(8, true);
      const vv = view(val);
      if (xid > this.xid || (vv.getUint32(0, true) & 1) !== 0) return; // newer, or deleted
      const cur = best.get(oid);
      if (!cur || xid > cur.xid) best.set(oid, { xid, paddr: vv.getBigUint64(8, true) });
    });
    return new Map([...best].map(([oid, x]) => [oid, x.paddr]));
  }

  /** Visit every leaf record of a B-tree (physical when `omap` is null, else virtual). */
  private walkTree(rootOid: bigint, omap: Map<bigint, bigint> | null, visit: (key: Uint8Array, val: Uint8Array, at: bigint) => void): void {
    const stack: { oid: bigint; depth: number }[] = [{ oid: rootOid, depth: 0 }];
    let visited = 0;
    const bs = this.blockSize;
    while (stack.length > 0) {
      const { oid, depth } = stack.pop()!;
      if (++visited > MAX_NODES || depth > 32) throw new FormatError('APFS B-tree', 0n, 'tree too deep or too large (loop?)');
      const paddr = omap ? omap.get(oid) : oid;
      if (paddr === undefined) throw new FormatError('APFS object map', 0n, `virtual object ${oid} is not mapped`);
      const node = this.readBlock(paddr);
      const at = paddr * BigInt(bs);
      if (!objectChecksumOk(node)) throw new FormatError('APFS B-tree node', at, 'bad Fletcher-64 checksum');
      const dv = view(node);
      const type = dv.getUint32(24, true) & F.OBJECT_TYPE_MASK;
      if (type !== F.OBJECT_TYPE_BTREE && type !== F.OBJECT_TYPE_BTREE_NODE) throw new FormatError('APFS B-tree node', at + 24n, `object type 0x${type.toString(16)}`);
      const flags = dv.getUint16(32, true);
      const level = dv.getUint16(34, true);
      const nkeys = dv.getUint32(36, true);
      const isRoot = (flags & F.BTNODE_ROOT) !== 0;
      const leaf = (flags & F.BTNODE_LEAF) !== 0;
      if (leaf !== (level === 0)) throw new FormatError('APFS B-tree node', at + 32n, `leaf flag and level ${level} disagree`);
      const fixed = (flags & F.BTNODE_FIXED_KV_SIZE) !== 0;
      const tocOff = F.BTREE_NODE_HEADER + dv.getUint16(40, true);
      const tocLen = dv.getUint16(42, true);
      const keyStart = tocOff + tocLen;
      const valEnd = bs - (isRoot ? F.BTREE_INFO_SIZE : 0);
      const entry = fixed ? 4 : 8;
      if (keyStart > valEnd || nkeys * entry > tocLen) throw new FormatError('APFS B-tree node', at + 36n, `${nkeys} records do not fit the table of contents`);
      let kSize = 16;
      let vSize = 16;
      if (fixed) {
        // Fixed sizes come from the root's footer; only object maps (16/16) are read here.
        vSize = leaf ? 16 : 8;
        kSize = 16;
      }
      const children: bigint[] = [];
      for (let i = 0; i < nkeys; i++) {
        const t = tocOff + i * entry;
        const ko = dv.getUint16(t, true);
        const kl = fixed ? kSize : dv.getUint16(t + 2, true);
        const vo = dv.getUint16(t + (fixed ? 2 : 4), true);
        const vl = fixed ? vSize : dv.getUint16(t + 6, true);
        const ks = keyStart + ko;
        const vs = valEnd - vo;
        if (ks + kl > valEnd || vs < keyStart || vs + vl > valEnd || vo === 0xffff) throw new FormatError('APFS B-tree node', at + BigInt(t), `record ${i} lies outside the node`);
        const key = node.subarray(ks, ks + kl);
        const val = node.subarray(vs, vs + vl);
        if (leaf) visit(key, val, at + BigInt(ks));
        else {
          if (vl < 8) throw new FormatError('APFS B-tree index record', at + BigInt(vs), 'child pointer too short');
          children.push(view(val).getBigUint64(0, true));
        }
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push({ oid: children[i]!, depth: depth + 1 });
    }
  }

  private record(key: Uint8Array, val: Uint8Array, at: bigint, hashed: boolean): void {
    if (key.length < 8) throw new FormatError('APFS record key', at, 'shorter than its header');
    const k = view(key);
    const hdr = k.getBigUint64(0, true);
    const id = hdr & F.OBJ_ID_MASK;
    const type = hdr >> F.OBJ_TYPE_SHIFT;
    const v = view(val);
    if (type === F.APFS_TYPE_INODE) {
      if (val.length < 92) throw new FormatError('APFS inode record', at, `value is ${val.length} bytes`);
      const inode: Inode = {
        id, parent: v.getBigUint64(0, true), mtimeNs: v.getBigUint64(24, true), bsdFlags: v.getUint32(68, true),
        uid: v.getUint32(72, true), gid: v.getUint32(76, true), mode: v.getUint16(80, true), size: 0n, offset: at,
      };
      // Extended fields: the data stream carries the size.
      if (val.length >= 96) {
        const n = v.getUint16(92, true);
        let data = 96 + 4 * n;
        if (data > val.length) throw new FormatError('APFS inode extended fields', at, `${n} fields do not fit`);
        for (let i = 0; i < n; i++) {
          const xt = v.getUint8(96 + 4 * i);
          const xs = v.getUint16(98 + 4 * i, true);
          if (data + xs > val.length) throw new FormatError('APFS inode extended field', at, `field ${i} runs past the record`);
          if (xt === F.INO_EXT_TYPE_DSTREAM && xs >= 8) inode.size = v.getBigUint64(data, true);
          data += (xs + 7) & ~7;
        }
      }
      this.inodes.set(id, inode);
    } else if (type === F.APFS_TYPE_DIR_REC) {
      const nameOff = hashed ? 12 : 10;
      if (key.length < nameOff || val.length < 18) throw new FormatError('APFS directory record', at, 'too short');
      const len = hashed ? k.getUint32(8, true) & 0x3ff : k.getUint16(8, true);
      if (nameOff + len > key.length || len === 0) throw new FormatError('APFS directory record', at, `name length ${len} runs past the key`);
      const name = dec.decode(key.subarray(nameOff, nameOff + len - 1));
      const list = this.dirents.get(id) ?? [];
      list.push({ name, id: v.getBigUint64(0, true) });
      this.dirents.set(id, list);
    } else if (type === F.APFS_TYPE_FILE_EXTENT) {
      if (key.length < 16 || val.length < 24) throw new FormatError('APFS file extent record', at, 'too short');
      const list = this.extents.get(id) ?? [];
      list.push({ logical: k.getBigUint64(8, true), length: v.getBigUint64(0, true) & F.FILE_EXTENT_LEN_MASK, phys: v.getBigUint64(8, true) });
      this.extents.set(id, list);
    } else if (type === F.APFS_TYPE_XATTR) {
      if (key.length < 10 || val.length < 4) throw new FormatError('APFS xattr record', at, 'too short');
      const nl = k.getUint16(8, true);
      if (10 + nl > key.length) throw new FormatError('APFS xattr record', at, `name length ${nl} runs past the key`);
      const name = dec.decode(key.subarray(10, 10 + Math.max(0, nl - 1)));
      const flags = v.getUint16(0, true);
      if (name === F.SYMLINK_EA_NAME && (flags & F.XATTR_DATA_EMBEDDED)) {
        const len = v.getUint16(2, true);
        if (4 + len > val.length) throw new FormatError('APFS xattr record', at, `data length ${len} runs past the record`);
        let t = val.subarray(4, 4 + len);
        if (t.length > 0 && t[t.length - 1] === 0) t = t.subarray(0, t.length - 1);
        this.links.set(id, dec.decode(t));
      }
    }
  }

  private entryOf(id: bigint, name: string, path: string): FsEntry {
    const i = this.inodes.get(id);
    if (!i) throw new FormatError('APFS directory record', 0n, `${path} names inode ${id}, which has no inode record`);
    const t = i.mode & S_IFMT;
    const kind = t === S_IFDIR ? 'dir' : t === S_IFLNK ? 'symlink' : t === S_IFREG ? 'file' : 'other';
    const e: FsEntry = { path, name, kind, mode: i.mode, uid: i.uid, gid: i.gid, size: i.size, mtimeNs: i.mtimeNs, id };
    if (kind === 'symlink') {
      e.target = this.links.get(id) ?? '';
      e.size = BigInt(new TextEncoder().encode(e.target).length);
    }
    return e;
  }

  private children(id: bigint, p: string): FsEntry[] {
    const prefix = p === '/' ? '' : p;
    return (this.dirents.get(id) ?? []).map((d) => this.entryOf(d.id, d.name, `${prefix}/${d.name}`));
  }

  private lookup(path: string): FsEntry {
    let cur = this.entryOf(F.ROOT_DIR_INO_NUM, '', '/');
    for (const part of splitPath(path)) {
      if (cur.kind !== 'dir') throw new ImageInputError(`${cur.path}: not a directory`);
      const list = this.dirents.get(cur.id) ?? [];
      const want = foldName(part, !this.caseSensitive);
      const d = list.find((x) => x.name === part) ?? list.find((x) => foldName(x.name, !this.caseSensitive) === want);
      if (!d) throw new ImageInputError(`${cur.path === '/' ? '' : cur.path}/${part}: no such file or directory in the image`);
      cur = this.entryOf(d.id, d.name, `${cur.path === '/' ? '' : cur.path}/${d.name}`);
    }
    return cur;
  }

  stat(path: string): FsEntry {
    return this.lookup(path);
  }

  list(path: string): FsEntry[] {
    const e = this.lookup(path);
    return e.kind === 'dir' ? this.children(e.id, e.path) : [e];
  }

  read(path: string): Iterable<Uint8Array> {
    return this.readEntry(this.lookup(path));
  }

  *readEntry(entry: FsEntry): Iterable<Uint8Array> {
    if (entry.kind === 'dir') throw new ImageInputError(`${entry.path}: is a directory`);
    if (entry.kind === 'symlink') {
      yield new TextEncoder().encode(entry.target ?? '');
      return;
    }
    const inode = this.inodes.get(entry.id);
    if (!inode) throw new ImageInputError(`${entry.path}: not a file of this volume`);
    if (inode.bsdFlags & UF_COMPRESSED) throw new FormatError('APFS inode', inode.offset, `${entry.path} is transparently compressed (decmpfs), which this reader does not expand`);
    const exts = [...(this.extents.get(entry.id) ?? [])].sort((a, b) => (a.logical < b.logical ? -1 : a.logical > b.logical ? 1 : 0));
    const bs = BigInt(this.blockSize);
    let pos = 0n;
    const size = inode.size;
    for (const x of exts) {
      if (pos >= size) break;
      if (x.logical > pos) {
        yield* zeros(min(x.logical, size) - pos);
        pos = min(x.logical, size);
      }
      let left = min(x.length - (pos - x.logical), size - pos);
      let off = x.phys * bs + (pos - x.logical);
      while (left > 0n) {
        const n = Number(min(left, BigInt(CHUNK)));
        if (x.phys === 0n) yield new Uint8Array(n);
        else yield this.readRaw(off, n);
        off += BigInt(n);
        left -= BigInt(n);
        pos += BigInt(n);
      }
    }
    if (pos < size) yield* zeros(size - pos);
  }

  *walk(path = '/'): Iterable<FsEntry> {
    const start = this.lookup(path);
    const stack = start.kind === 'dir' ? this.children(start.id, start.path).reverse() : [start];
    let guard = 0;
    while (stack.length > 0) {
      const e = stack.pop()!;
      if (++guard > this.inodes.size + 1) throw new FormatError('APFS file-system tree', 0n, 'directory structure loops');
      yield e;
      if (e.kind === 'dir') stack.push(...this.children(e.id, e.path).reverse());
    }
  }
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function* zeros(n: bigint): Generator<Uint8Array> {
  let left = n;
  while (left > 0n) {
    const c = Number(min(left, BigInt(CHUNK)));
    yield new Uint8Array(c);
    left -= BigInt(c);
  }
}

export function openApfs(src: ByteSource): ApfsVolume {
  return new ApfsVolume(src);
}
