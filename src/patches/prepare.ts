import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { FormatError, inFile, PatchError, UsageError } from '../errors.js';
import { serializeAdt, type AdtNode } from '../dtb/adt.js';
import { deriveAdt } from '../dtb/derive-adt.js';
import { openDeviceTree } from '../dtb/device-tree.js';
import { applyEdits, loadEdits } from '../dtb/edits.js';
import { loadLayout, selectCpus, withRamSize } from '../dtb/layout.js';
import { buildImage } from '../img/io-build.js';
import { buildSampleBaseAdt } from '../samples/base-adt.js';
import { openContainer, packIm4p } from '../macho/container.js';
import { artifactFor, MANIFEST_NAME, MANIFEST_VERSION, sha256, type Manifest } from '../manifest.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { toJson } from '../util/hex.js';
import { applyOutcomes, planPatches, type PatchOutcome } from './engine.js';
import { profileForDarwin, type LoadedProfile } from './profile.js';
import { REPORT_JSON, REPORT_TXT, REPORT_VERSION, reportPatches, reportText, summarize, type PatchReport } from './report.js';
import { openCollection, type Collection } from './target.js';
import { inRange } from './versions.js';

// `m1prep patch`: unpack the kernelcache, run the profile's patches, and — when every required
// patch applied — write the output directory: patched kernel (raw and IM4P), device tree,
// ramdisk, layout, report and manifest. The caller writes it through writeDirAtomic, so out/ is
// complete or untouched.

export const OUT = {
  kernel: 'kernelcache.macho',
  kernelIm4p: 'kernelcache.im4p',
  devicetree: 'devicetree.adt',
  ramdisk: 'ramdisk.img',
  layout: 'layout.yaml',
} as const;

/** Kernel collections are large but bounded: refuse to inflate past this. */
const MAX_KERNELCACHE = 1024 * 1024 * 1024;

export interface PatchRequest {
  loaded: LoadedProfile;
  kernelcache: string;
  deviceTree?: string;
  ramdiskFrom?: string;
  ramdiskFs?: 'apfs' | 'hfsplus';
  exclude: string[];
  dryRun: boolean;
}

export interface PatchPlan {
  request: PatchRequest;
  input: Uint8Array;
  collection: Collection;
  /** The unwrapped raw Mach-O (a view of `input` when it was not compressed). */
  original: Uint8Array;
  patched: Uint8Array;
  repack: (payload: Uint8Array) => Uint8Array;
  outcomes: PatchOutcome[];
  report: PatchReport;
}

/** Unpack, check the Darwin version against the profile, plan every patch, build the report. */
export async function planRequest(req: PatchRequest): Promise<PatchPlan> {
  const { profile, patches } = req.loaded;
  const known = new Set(patches.map((p) => p.id));
  const unknown = req.exclude.filter((id) => !known.has(id));
  if (unknown.length) throw new UsageError(`--exclude-patch ${unknown.join(', ')}: no such patch in profile ${profile.name} (its patches: ${[...known].join(', ')})`);
  const input = new Uint8Array(readFileSync(req.kernelcache));
  const container = inFile(req.kernelcache, () => openContainer(input, { maxOutput: MAX_KERNELCACHE }));
  if (container.encrypted) throw new FormatError('IM4P', 0n, 'the kernelcache payload is encrypted (decrypt it first)', req.kernelcache);
  const original = container.payload;
  const collection = inFile(req.kernelcache, () => openCollection(original));
  if (collection.darwin === null) {
    throw new PatchError(`${req.kernelcache}: no "Darwin Kernel Version" string in the kernel, so profile ${profile.name} (Darwin ${profile.darwin.min}..${profile.darwin.max}) cannot be checked against it`);
  }
  if (!inRange(collection.darwin, profile.darwin)) {
    const fits = profileForDarwin(collection.darwin);
    throw new PatchError(`${req.kernelcache}: the kernel is Darwin ${collection.darwin}, but profile ${profile.name} accepts Darwin ${profile.darwin.min}..${profile.darwin.max}: ${fits ? `use --profile ${fits}` : 'no shipped profile accepts it (see docs/patches.md, "Adding a profile")'}`);
  }
  const outcomes = planPatches(collection, patches, { macos: profile.macos.replace(/\.x$/, ''), exclude: new Set(req.exclude) });
  const ok = outcomes.every((o) => o.status !== 'failed' && o.status !== 'already-applied');
  const patched = ok ? applyOutcomes(original, outcomes) : original;
  const report: PatchReport = {
    m1prepPatchReport: REPORT_VERSION, profile: profile.name, macos: profile.macos, darwin: collection.darwin, arch: collection.arch,
    originalSha256: sha256(original), patchedSha256: sha256(patched), dryRun: req.dryRun, summary: summarize(outcomes),
    patches: await reportPatches(original, patched, outcomes),
  };
  const repack = container.layers.length > 0 && container.fourcc !== undefined
    ? (p: Uint8Array) => container.repack(p)
    : (p: Uint8Array) => packIm4p({ fourcc: 'krnl', description: `m1prep ${profile.name} patched kernelcache`, payload: p, compression: 'lzfse' });
  return { request: req, input, collection, original, patched, repack, outcomes, report };
}

function deviceTreeFor(plan: PatchPlan): { bytes: Uint8Array; base: string } {
  const { profile } = plan.request.loaded;
  const base = plan.request.deviceTree ?? profile.deviceTree.base;
  if (!base) {
    throw new UsageError(`profile ${profile.name} names no base device tree: give one with --device-tree (an Apple ADT of a t8103 Mac, raw or IM4P)`);
  }
  // A tree written as data (device-tree edits applied to an empty root, like the sample's) or
  // a binary ADT, raw or IM4P.
  const bytes = /\.ya?ml$/i.test(base) ? buildSampleBaseAdt(base) : new Uint8Array(readFileSync(base));
  const opened = inFile(base, () => openDeviceTree(bytes));
  if (opened.tree.kind !== 'adt') throw new UsageError(`${base}: an XNU guest needs an Apple device tree (ADT), not an FDT`);
  const baseRoot = opened.tree.root;
  let layout = inFile(profile.layout, () => loadLayout(readFileSync(profile.layout, 'utf8'), profile.layout));
  layout = selectCpus(withRamSize(layout, BigInt(profile.machine.ramMiB) * 1024n * 1024n), profile.machine.cpus);
  let tree: { kind: 'adt'; root: AdtNode } = { kind: 'adt', root: inFile(base, () => deriveAdt(baseRoot, layout)) };
  for (const f of profile.deviceTree.edits) {
    const edited = applyEdits(tree, loadEdits(readFileSync(f, 'utf8'), f));
    if (edited.kind !== 'adt') throw new PatchError(`${f}: device-tree edits turned the ADT into an FDT`);
    tree = edited;
  }
  return { bytes: serializeAdt(tree.root), base };
}

function ramdiskSource(plan: PatchPlan): { from: string; fs: 'apfs' | 'hfsplus' } | undefined {
  const { profile } = plan.request.loaded;
  const from = plan.request.ramdiskFrom ?? profile.ramdisk.from;
  if (!from) return undefined;
  return { from, fs: plan.request.ramdiskFs ?? profile.ramdisk.fs };
}

/** sha256 over a directory's relative paths and file contents, in sorted order. */
function directoryDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string, rel: string, depth: number) => {
    if (depth > 64) return;
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p, r, depth + 1);
      else if (e.isFile()) h.update(`${r}\0`).update(readFileSync(p)).update('\0');
    }
  };
  walk(dir, '', 0);
  return h.digest('hex');
}

function fileInput(role: string, file: string): { role: string; path: string; sha256: string } {
  return { role, path: path.resolve(file), sha256: sha256(readFileSync(file)) };
}

/** Write every output into `dir` (a fresh temporary directory that then becomes out/). */
export async function writeOutputs(plan: PatchPlan, dir: string, step: (what: string) => void = () => {}): Promise<Manifest> {
  const { profile, sets } = plan.request.loaded;
  const put = async (name: string, data: Uint8Array | string) => {
    await writeFileAtomic(path.join(dir, name), data);
  };
  step('write the patched kernelcache');
  await put(OUT.kernel, plan.patched);
  step('re-pack it as IM4P');
  await put(OUT.kernelIm4p, plan.repack(plan.patched));
  step('derive the device tree');
  const dt = deviceTreeFor(plan);
  await put(OUT.devicetree, dt.bytes);
  await put(OUT.layout, readFileSync(profile.layout));
  const rd = ramdiskSource(plan);
  const inputs = [
    fileInput('kernelcache', plan.request.kernelcache),
    fileInput('device-tree-base', dt.base),
    fileInput('profile', profile.file),
    ...sets.map((s) => fileInput(`patch-set:${s.name}`, s.file)),
    ...profile.deviceTree.edits.map((f) => fileInput('device-tree-edits', f)),
  ];
  if (rd) {
    step(`build the ${rd.fs} ramdisk from ${rd.from}`);
    buildImage({ fs: rd.fs, fromDir: rd.from, output: path.join(dir, OUT.ramdisk), label: 'RAMDISK' });
    if (statSync(rd.from).isFile()) inputs.push(fileInput('ramdisk-manifest', rd.from));
    else inputs.push({ role: 'ramdisk-directory', path: path.resolve(rd.from), sha256: directoryDigest(rd.from) });
  }
  step('write the report and the manifest');
  await put(REPORT_JSON, toJson(plan.report) + '\n');
  await put(REPORT_TXT, reportText(plan.report));
  const manifest: Manifest = {
    m1prep: MANIFEST_VERSION, guest: 'xnu', profile: profile.name, macos: profile.macos, darwin: plan.collection.darwin ?? undefined,
    artifacts: {
      kernel: artifactFor(dir, OUT.kernel),
      kernelIm4p: artifactFor(dir, OUT.kernelIm4p),
      devicetree: artifactFor(dir, OUT.devicetree),
      ...(rd ? { ramdisk: { ...artifactFor(dir, OUT.ramdisk), fs: rd.fs } } : {}),
      patchReport: artifactFor(dir, REPORT_JSON),
      layout: artifactFor(dir, OUT.layout),
    },
    bootArgs: profile.bootArgs,
    machine: { ...profile.machine },
    verify: { ...profile.verify },
    inputs,
  };
  await put(MANIFEST_NAME, JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}
