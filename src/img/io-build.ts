import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ImageInputError } from './input-error.js';
import { walkDirectory } from './io-walk.js';
import { parseManifest } from './manifest.js';
import type { ImagePlan } from './plan.js';
import { planImage, type BuildOptions } from './build.js';
import { writePlan, type WriteProgress } from './io-write.js';
import type { DirNode, Xattr } from './tree.js';
import { xattrReader } from '../host/xattr.js';
import { walkTree } from './tree.js';

// The file-touching half of `ramdisk build`: read the source (directory or YAML manifest),
// plan the image (pure, src/img/build.ts), and stream it to the output atomically.

export interface LoadOptions {
  skipSpecial?: boolean;
  onSkip?: (relPath: string, what: string) => void;
  /** SOURCE_DATE_EPOCH in seconds, if set. */
  sourceDateEpoch?: bigint;
  /** Read the source's extended attributes (default true; only user.* ones are carried). */
  xattrs?: boolean;
  /** An attribute namespace left out (first path it was seen on), or null: this host cannot read attributes. */
  onXattrSkip?: (namespace: string | null, path: string) => void;
}

/** The walker's attribute reader: this host's, reporting each left-out namespace once. */
function attributeReader(opts: LoadOptions, root: string): ((abs: string) => Xattr[]) | undefined {
  if (opts.xattrs === false) return undefined;
  const reader = xattrReader();
  if (!reader) {
    opts.onXattrSkip?.(null, root);
    return undefined;
  }
  const told = new Set<string>();
  return (abs) => {
    const r = reader(abs);
    for (const ns of r.skipped) {
      if (told.has(ns)) continue;
      told.add(ns);
      opts.onXattrSkip?.(ns, abs);
    }
    return r.attrs;
  };
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): bigint | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new ImageInputError(`SOURCE_DATE_EPOCH=${JSON.stringify(v)} is not a number of seconds`);
  return BigInt(v);
}

/** A directory tree, or a .yaml/.yml manifest, as a metadata tree (and the manifest's label). */
export function loadSource(from: string, opts: LoadOptions = {}): { root: DirNode; label?: string } {
  const fixedTimeNs = opts.sourceDateEpoch !== undefined ? opts.sourceDateEpoch * 1_000_000_000n : undefined;
  const st = statSync(from);
  if (st.isDirectory()) {
    return { root: walkDirectory(from, { skipSpecial: opts.skipSpecial, onSkip: opts.onSkip, fixedTimeNs, readXattrs: attributeReader(opts, from) }) };
  }
  if (!/\.ya?ml$/i.test(from)) throw new ImageInputError(`${from}: --from takes a directory or a .yaml manifest`);
  const base = path.dirname(path.resolve(from));
  const m = parseManifest(readFileSync(from, 'utf8'), {
    resolve: (s) => path.resolve(base, s),
    sizeOf: (abs) => {
      const s = statSync(abs, { bigint: true });
      if (!s.isFile()) throw new ImageInputError(`${abs}: a manifest 'source' must be a regular file`);
      return s.size;
    },
    fixedTimeNs,
  }, from);
  return m;
}

/** Latest timestamp in the tree: the volume's creation date when SOURCE_DATE_EPOCH is unset. */
export function newestTime(root: DirNode): bigint {
  let t = 0n;
  for (const { node } of walkTree(root)) if (node.mtimeNs > t) t = node.mtimeNs;
  return t;
}

export interface BuildImageArgs extends Omit<BuildOptions, 'createdNs' | 'label'> {
  /** A ready tree, or a directory / manifest to read. */
  tree?: DirNode;
  fromDir?: string;
  output: string;
  label?: string;
  skipSpecial?: boolean;
  onSkip?: (relPath: string, what: string) => void;
  /** See LoadOptions. */
  xattrs?: boolean;
  onXattrSkip?: LoadOptions['onXattrSkip'];
  progress?: WriteProgress;
  env?: NodeJS.ProcessEnv;
}

/** Build an image file (the library entry point other areas call). Returns the plan it wrote. */
export function buildImage(a: BuildImageArgs): ImagePlan {
  const sde = sourceDateEpoch(a.env);
  let root = a.tree;
  let label = a.label;
  if (!root) {
    if (!a.fromDir) throw new ImageInputError('buildImage needs a tree or fromDir');
    const loaded = loadSource(a.fromDir, { skipSpecial: a.skipSpecial, onSkip: a.onSkip, sourceDateEpoch: sde, xattrs: a.xattrs, onXattrSkip: a.onXattrSkip });
    root = loaded.root;
    label ??= loaded.label;
  }
  const createdNs = sde !== undefined ? sde * 1_000_000_000n : newestTime(root);
  const plan = planImage(root, { ...a, label: label ?? 'RAMDISK', createdNs });
  writePlan(plan, a.output, a.progress);
  return plan;
}
