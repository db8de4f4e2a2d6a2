import koffi from 'koffi';
import { ImageInputError } from '../img/input-error.js';
import type { Xattr } from '../img/tree.js';

// Extended attributes of source files, for ramdisks built from a directory. Node has no xattr API,
// so this calls the C library through koffi: llistxattr/lgetxattr (the l- forms never follow a
// symbolic link). Linux only: elsewhere, or without libc, `xattrReader()` is null and the caller
// says that attributes were not read.
//
// Names: Linux keeps attributes in namespaces; only `user.*` holds attributes a user (or tar
// --xattrs) put there, and it is how macOS names such as com.apple.FinderInfo travel on Linux. So
// `user.com.apple.FinderInfo` becomes `com.apple.FinderInfo` in the image; `security.*` (SELinux
// labels, capabilities), `system.*` (POSIX ACLs) and `trusted.*` mean nothing to macOS and are left
// out, reported once per namespace.

/** XATTR_LIST_MAX and XATTR_SIZE_MAX of linux/limits.h: no list or value is larger. */
const XATTR_MAX = 65536;
const ENODATA = 61;
const ENOTSUP = 95;

export interface XattrRead {
  attrs: Xattr[];
  /** Namespaces of attributes left out (e.g. "security"). */
  skipped: string[];
}

export type XattrReader = (path: string) => XattrRead;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...args: any[]) => any;
let fns: { list: Fn; get: Fn } | null | undefined;

function load(): { list: Fn; get: Fn } | null {
  if (fns !== undefined) return fns;
  fns = null;
  if (process.platform !== 'linux') return fns;
  try {
    const lib = koffi.load('libc.so.6');
    fns = {
      list: lib.func('long llistxattr(const char *path, _Out_ uint8_t *list, size_t size)'),
      get: lib.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    };
  } catch {
    fns = null;
  }
  return fns;
}

function fail(what: string, path: string): never {
  throw new ImageInputError(`${path}: cannot read its extended attributes: ${what} failed (errno ${koffi.errno()})`);
}

/** The reader for this host, or null where extended attributes cannot be read. */
export function xattrReader(): XattrReader | null {
  const f = load();
  if (!f) return null;
  return (path: string): XattrRead => {
    // Ask for the list's size first: most files have no attributes, and then one cheap call is all.
    const size = Number(f.list(path, null, 0));
    if (size < 0) {
      if (koffi.errno() === ENOTSUP) return { attrs: [], skipped: [] }; // the file system has no attributes
      fail('llistxattr', path);
    }
    if (size === 0) return { attrs: [], skipped: [] };
    const buf = new Uint8Array(Math.min(XATTR_MAX, size * 2)); // room for one added since the size call
    const n = Number(f.list(path, buf, buf.length));
    if (n < 0) fail('llistxattr', path);
    const attrs: Xattr[] = [];
    const skipped = new Set<string>();
    let at = 0;
    while (at < n) {
      const end = buf.indexOf(0, at);
      if (end < 0 || end > n) break;
      const full = Buffer.from(buf.subarray(at, end)).toString('utf8');
      at = end + 1;
      const dot = full.indexOf('.');
      const ns = dot < 0 ? full : full.slice(0, dot);
      if (ns !== 'user' || dot === full.length - 1) { skipped.add(ns); continue; }
      const want = Number(f.get(path, full, null, 0));
      const value = new Uint8Array(Math.max(1, Math.min(XATTR_MAX, want < 0 ? 0 : want * 2)));
      const len = want < 0 ? want : Number(f.get(path, full, value, value.length));
      if (len < 0) {
        const e = koffi.errno();
        if (e === ENODATA) continue; // removed since the list was read
        fail(`lgetxattr ${full}`, path);
      }
      attrs.push({ name: full.slice(dot + 1), value: value.slice(0, len) });
    }
    // The image stores attributes sorted by name whatever the source order: sort here too, so
    // the tree (and a --json listing) is deterministic.
    attrs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { attrs, skipped: [...skipped].sort() };
  };
}
