import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import schema from './manifest.schema.json' with { type: 'json' };
import { ImageInputError } from './input-error.js';
import { checkName } from './names.js';
import type { DirNode, TreeNode, Xattr } from './tree.js';

// The YAML manifest: a list of entries (path, type, contents, owner, mode, time, xattrs) that
// becomes one metadata tree. Parent directories are created as needed (mode 0755, root:wheel
// unless `defaults` says otherwise). Pure: the caller supplies the sizes of source files.

export interface ManifestContext {
  /** Directory the manifest's relative `source` paths are resolved against. */
  resolve: (source: string) => string;
  /** Size of a source file (the caller stats it; it must be a regular file). */
  sizeOf: (absPath: string) => bigint;
  fixedTimeNs?: bigint;
}

interface RawEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  source?: string;
  content?: string;
  contentBase64?: string;
  target?: string;
  mode?: number | string;
  uid?: number;
  gid?: number;
  mtime?: number | string;
  xattrs?: Record<string, string | { base64: string }>;
}

interface RawManifest {
  label?: string;
  defaults?: { mode?: number | string; dirMode?: number | string; uid?: number; gid?: number; mtime?: number | string };
  entries: RawEntry[];
}

const ajv = new Ajv({ allErrors: false, strict: false });
const validate = ajv.compile<RawManifest>(schema);

function mode(v: number | string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  return typeof v === 'number' ? v : parseInt(v, 8);
}

function time(v: number | string | undefined, dflt: bigint, where: string): bigint {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return BigInt(v) * 1_000_000_000n;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new ImageInputError(`${where}: mtime ${JSON.stringify(v)} is not a date`);
  return BigInt(ms) * 1_000_000n;
}

export interface Manifest {
  label?: string;
  root: DirNode;
}

export function parseManifest(text: string, ctx: ManifestContext, file = 'manifest'): Manifest {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new ImageInputError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!validate(doc)) {
    const err = validate.errors?.[0];
    throw new ImageInputError(`${file}: ${err?.instancePath || '/'} ${err?.message ?? 'invalid'}`);
  }
  const d = doc.defaults ?? {};
  const dTime = ctx.fixedTimeNs ?? time(d.mtime, 0n, `${file}: defaults`);
  const base = { uid: d.uid ?? 0, gid: d.gid ?? 0, mtimeNs: dTime, xattrs: [] as Xattr[] };
  const root: DirNode = { kind: 'dir', name: '', children: [], perm: mode(d.dirMode, 0o755), ...base };
  const dirs = new Map<string, DirNode>([['', root]]);
  const taken = new Set<string>();
  const implicit = new Set<string>();
  const ensureDir = (parts: string[], where: string): DirNode => {
    let cur = root;
    let key = '';
    for (const p of parts) {
      key += '/' + p;
      let next = dirs.get(key);
      if (!next) {
        if (taken.has(key)) throw new ImageInputError(`${where}: ${key} is not a directory`);
        checkName(p, where);
        next = { kind: 'dir', name: p, children: [], perm: mode(d.dirMode, 0o755), ...base, xattrs: [] };
        cur.children.push(next);
        dirs.set(key, next);
        taken.add(key);
        implicit.add(key);
      }
      cur = next;
    }
    return cur;
  };
  doc.entries.forEach((e, i) => {
    const where = `${file}: entries[${i}] (${e.path})`;
    const parts = e.path.split('/').filter((s) => s !== '');
    if (parts.length === 0) throw new ImageInputError(`${where}: the root cannot be an entry`);
    parts.forEach((p) => checkName(p, where));
    const key = '/' + parts.join('/');
    const parent = ensureDir(parts.slice(0, -1), where);
    const name = parts[parts.length - 1]!;
    const xattrs: Xattr[] = Object.entries(e.xattrs ?? {}).map(([n, v]) => ({
      name: n,
      value: typeof v === 'string' ? new TextEncoder().encode(v) : Buffer.from(v.base64, 'base64'),
    }));
    const meta = {
      name, uid: e.uid ?? base.uid, gid: e.gid ?? base.gid, xattrs,
      mtimeNs: ctx.fixedTimeNs ?? time(e.mtime, dTime, where),
    };
    if (e.type === 'dir') {
      const existing = dirs.get(key);
      if (existing && implicit.delete(key)) {
        // An explicit entry for a directory an earlier path implied: it takes this metadata.
        Object.assign(existing, meta, { perm: mode(e.mode, existing.perm) });
        return;
      }
      if (taken.has(key)) throw new ImageInputError(`${where}: ${key} appears twice`);
      const dir: DirNode = { kind: 'dir', children: [], perm: mode(e.mode, mode(d.dirMode, 0o755)), ...meta };
      parent.children.push(dir);
      dirs.set(key, dir);
      taken.add(key);
      return;
    }
    if (taken.has(key)) throw new ImageInputError(`${where}: ${key} appears twice`);
    taken.add(key);
    let node: TreeNode;
    if (e.type === 'symlink') {
      if (e.target === undefined || e.source !== undefined || e.content !== undefined || e.contentBase64 !== undefined) throw new ImageInputError(`${where}: a symlink needs 'target' and nothing else`);
      node = { kind: 'symlink', target: e.target, perm: mode(e.mode, 0o755), ...meta };
    } else {
      const given = [e.source, e.content, e.contentBase64].filter((x) => x !== undefined).length;
      if (given > 1 || e.target !== undefined) throw new ImageInputError(`${where}: a file takes one of 'source', 'content' or 'contentBase64'`);
      const perm = mode(e.mode, mode(d.mode, 0o644));
      if (e.source !== undefined) {
        const abs = ctx.resolve(e.source);
        node = { kind: 'file', size: ctx.sizeOf(abs), content: { kind: 'path', path: abs }, perm, ...meta };
      } else {
        const data = e.contentBase64 !== undefined ? new Uint8Array(Buffer.from(e.contentBase64, 'base64')) : new TextEncoder().encode(e.content ?? '');
        node = { kind: 'file', size: BigInt(data.length), content: { kind: 'inline', data }, perm, ...meta };
      }
    }
    parent.children.push(node);
  });
  return { label: doc.label, root };
}
