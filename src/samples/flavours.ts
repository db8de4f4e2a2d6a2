import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { FormatError, UsageError } from '../errors.js';

// The sample guest's flavours (samples/flavours.yaml): one kernel collection per shipped profile.

export interface SampleFlavour {
  /** Profile name it is meant for (profiles/<profile>.yaml). */
  profile: string;
  macos: string;
  /** "21.4.0": printed as "Darwin Kernel Version 21.4.0" and used to pick the boot_args layout. */
  darwin: string;
  /** XNU's BOOT_LINE_LENGTH for that release: 608 (Darwin 20-22) or 1024 (Darwin 23+). */
  bootLineLength: 608 | 1024;
}

export function loadFlavours(file: string): SampleFlavour[] {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError('flavours.yaml', 0n, (e as Error).message, file);
  }
  const list = (doc as { flavours?: unknown })?.flavours;
  if (!Array.isArray(list) || list.length === 0) throw new FormatError('flavours.yaml', 0n, 'needs a non-empty "flavours" list', file);
  return list.map((f, i) => {
    const o = f as Record<string, unknown>;
    const ok = typeof o.profile === 'string' && typeof o.macos === 'string' && typeof o.darwin === 'string' && /^\d+\.\d+\.\d+$/.test(o.darwin)
      && (o.bootLineLength === 608 || o.bootLineLength === 1024);
    if (!ok) throw new FormatError('flavours.yaml', BigInt(i), `flavour ${i + 1}: needs profile, macos, darwin "X.Y.Z" and bootLineLength 608|1024`, file);
    return o as unknown as SampleFlavour;
  });
}

/** Pick flavours by profile or macOS version ("12.3", "14.x"); all of them for "all". */
export function selectFlavours(all: SampleFlavour[], wanted: string[]): SampleFlavour[] {
  if (wanted.length === 0 || wanted.includes('all')) return all;
  return wanted.map((w) => {
    const f = all.find((x) => x.profile === w || x.macos === w || x.darwin === w);
    if (!f) throw new UsageError(`no sample flavour "${w}" (have: ${all.map((x) => x.profile).join(', ')})`);
    return f;
  });
}

export function darwinMajor(f: SampleFlavour): number {
  return Number(f.darwin.split('.')[0]);
}

/** macOS major version a Darwin major corresponds to (Darwin 20 = macOS 11). */
export function macosMajor(f: SampleFlavour): number {
  return darwinMajor(f) - 9;
}

export function defaultSampleRoot(repoRoot: string): string {
  return path.join(repoRoot, 'samples');
}
