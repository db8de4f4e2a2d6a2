import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { loadPatchSet, type Patch, type PatchSet } from './patch-set.js';
import { inRange, rangeSane, type VersionRange } from './versions.js';
import { packageRoot, schemaValidator, YamlSource, type Problem } from './yaml-source.js';

// A profile (profiles/<version>.yaml, schemas/profile.schema.json) names everything `m1prep patch`
// needs for one macOS version. Paths inside are relative to the profile file; here they become
// absolute, and every file the profile names is checked to exist.

export interface Profile {
  file: string;
  /** The file name without .yaml: "12.3", "13.x". */
  name: string;
  macos: string;
  darwin: Required<VersionRange>;
  description: string;
  guest: 'xnu';
  patchSets: string[];
  bootArgs: string;
  layout: string;
  deviceTree: { base?: string; edits: string[] };
  ramdisk: { fs: 'apfs' | 'hfsplus'; from?: string; sizeMiB?: number };
  machine: { ramMiB: number; cpus: number };
  verify: { success: string[]; failure: string[]; timeoutS: number };
}

export interface LoadedProfile {
  profile: Profile;
  sets: PatchSet[];
  patches: Patch[];
}

export function profilesDir(): string {
  return path.join(packageRoot(), 'profiles');
}

/** `--profile 12.3` (a shipped profile) or a path to a profile file. */
export function resolveProfilePath(arg: string): string {
  if (/\.ya?ml$/.test(arg) || arg.includes('/')) {
    if (!existsSync(arg)) throw new UsageError(`profile ${arg}: no such file`);
    return path.resolve(arg);
  }
  const p = path.join(profilesDir(), `${arg}.yaml`);
  if (!existsSync(p)) throw new UsageError(`no profile "${arg}" (shipped: ${shippedProfiles().join(', ')}); or give a path to a profile file`);
  return p;
}

export function shippedProfiles(): string[] {
  const ordered = ['11.x', '12.0', '12.3', '13.x', '14.x', '15.x'];
  return ordered.filter((n) => existsSync(path.join(profilesDir(), `${n}.yaml`)));
}

/** Read and check a profile file (schema, ranges, the files it names); problems go to src. */
export function readProfile(src: YamlSource): Profile | null {
  if (!src.validate(schemaValidator('profile'), 'profile')) return null;
  const raw = src.data() as Omit<Profile, 'file' | 'name' | 'guest' | 'deviceTree' | 'layout'> & { layout?: string; guest?: 'xnu'; patchDir?: string; deviceTree: { base?: string; edits?: string[] } };
  const dir = path.dirname(path.resolve(src.file));
  const rel = (p: string) => path.resolve(dir, p);
  if (!rangeSane(raw.darwin)) src.problem(['darwin'], `darwin range ${raw.darwin.min}..${raw.darwin.max} is empty (min is above max)`);
  const mustExist = (p: string, where: (string | number)[], what: string) => {
    if (!existsSync(rel(p))) src.problem(where, `${what} ${p} does not exist (paths are relative to the profile)`);
  };
  // Without a layout, the one m1prep ships.
  const layout = raw.layout ?? path.join(packageRoot(), 'layouts', 't8103-virt.yaml');
  mustExist(layout, ['layout'], 'layout');
  if (raw.deviceTree.base !== undefined) mustExist(raw.deviceTree.base, ['deviceTree', 'base'], 'base device tree');
  (raw.deviceTree.edits ?? []).forEach((e, i) => mustExist(e, ['deviceTree', 'edits', i], 'device-tree edit file'));
  if (raw.ramdisk.from !== undefined) mustExist(raw.ramdisk.from, ['ramdisk', 'from'], 'ramdisk source');
  for (const key of ['success', 'failure'] as const) {
    raw.verify[key].forEach((re, i) => {
      try {
        new RegExp(re);
      } catch (e) {
        src.problem(['verify', key, i], `not a valid regular expression: ${(e as Error).message}`);
      }
    });
  }
  const patchDir = rel(raw.patchDir ?? '../patches');
  raw.patchSets.forEach((s, i) => {
    if (!existsSync(path.join(patchDir, `${s}.yaml`))) src.problem(['patchSets', i], `patch set "${s}" not found: no ${path.relative(process.cwd(), path.join(patchDir, `${s}.yaml`))}`);
  });
  if (!src.ok) return null;
  return {
    file: src.file, name: path.basename(src.file).replace(/\.ya?ml$/, ''), macos: raw.macos, darwin: raw.darwin,
    description: raw.description, guest: raw.guest ?? 'xnu', patchSets: raw.patchSets.map((s) => path.join(patchDir, `${s}.yaml`)),
    bootArgs: raw.bootArgs, layout: rel(layout),
    deviceTree: { base: raw.deviceTree.base !== undefined ? rel(raw.deviceTree.base) : undefined, edits: (raw.deviceTree.edits ?? []).map(rel) },
    ramdisk: { ...raw.ramdisk, from: raw.ramdisk.from !== undefined ? rel(raw.ramdisk.from) : undefined },
    machine: raw.machine, verify: raw.verify,
  };
}

/** Load the patch sets a profile names and check ids are unique across them. */
export function loadSets(files: string[], problems: Problem[]): PatchSet[] {
  const sets: PatchSet[] = [];
  const ids = new Map<string, string>();
  for (const f of files) {
    const src = YamlSource.read(f);
    const set = loadPatchSet(src);
    set?.patches.forEach((p, i) => {
      const prev = ids.get(p.id);
      if (prev !== undefined) src.problem(['patches', i, 'id'], `patch id "${p.id}" is also used in ${prev} (ids must be unique across a profile's patch sets)`);
      else ids.set(p.id, path.basename(f));
    });
    problems.push(...src.problems);
    if (set) sets.push(set);
  }
  return sets;
}

/** A profile with its patch sets, or the list of problems that prevent using it. */
export function loadProfile(arg: string): LoadedProfile | { problems: Problem[] } {
  const src = YamlSource.read(resolveProfilePath(arg));
  const profile = readProfile(src);
  if (!profile) return { problems: src.problems };
  const problems: Problem[] = [];
  const sets = loadSets(profile.patchSets, problems);
  if (problems.length) return { problems };
  return { profile, sets, patches: sets.flatMap((s) => s.patches) };
}

/** The shipped profile whose Darwin range holds `darwin`, if any. */
export function profileForDarwin(darwin: string): string | undefined {
  for (const name of shippedProfiles()) {
    const src = YamlSource.read(path.join(profilesDir(), `${name}.yaml`));
    const d = src.ok ? (src.data() as { darwin?: VersionRange }).darwin : undefined;
    if (d && inRange(darwin, d)) return name;
  }
  return undefined;
}
