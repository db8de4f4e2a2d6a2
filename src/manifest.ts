import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FormatError, UsageError } from './errors.js';

// out/manifest.json: what `m1prep patch` (or a sample build) hands to `m1prep boot`.
// Paths inside are relative to the directory that holds the manifest.

export const MANIFEST_NAME = 'manifest.json';
export const MANIFEST_VERSION = 1;

export interface Artifact {
  path: string;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  m1prep: typeof MANIFEST_VERSION;
  /** Which boot protocol the VMM uses. */
  guest: 'xnu' | 'linux';
  /** Profile that prepared it (null for hand-made outputs). */
  profile: string | null;
  macos?: string;
  /** "21.4.0" for xnu guests: picks the boot_args layout. */
  darwin?: string;
  artifacts: {
    /** xnu: raw Mach-O kernel collection; linux: arm64 Image. */
    kernel: Artifact;
    /** xnu: the same collection re-packed as IM4P (not used by the VMM). */
    kernelIm4p?: Artifact;
    /** xnu: Apple device tree (ADT); linux: FDT. */
    devicetree: Artifact;
    /** xnu: ramdisk image announced in /chosen/memory-map. */
    ramdisk?: Artifact & { fs: 'apfs' | 'hfsplus' };
    /** linux: initramfs. */
    initrd?: Artifact;
    /** Image behind virtio-blk (opened read-only; writes go to an overlay). */
    disk?: Artifact;
    /** Patch report (JSON) of `m1prep patch`. */
    patchReport?: Artifact;
    /** The layout the device tree and the VMM share (copied into out/). */
    layout: Artifact;
  };
  bootArgs: string;
  machine: { cpus: number; ramMiB: number };
  verify: {
    /** Regexes (JavaScript syntax) that must all appear on the console. */
    success: string[];
    /** Any of these on the console fails the boot. */
    failure: string[];
    timeoutS: number;
  };
  /** Inputs the outputs were made from, for provenance. */
  inputs: Array<{ role: string; path: string; sha256: string }>;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function artifactFor(dir: string, rel: string, data?: Uint8Array): Artifact {
  const bytes = data ?? readFileSync(path.join(dir, rel));
  return { path: rel, sha256: sha256(bytes), bytes: bytes.length };
}

function need(cond: unknown, file: string, what: string): asserts cond {
  if (!cond) throw new FormatError('manifest.json', 0n, what, file);
}

/** Read and check a manifest; with `checkHashes`, every artifact's sha256 is verified. */
export function readManifest(outDir: string, checkHashes = true): Manifest {
  const file = path.join(outDir, MANIFEST_NAME);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`${outDir}: no ${MANIFEST_NAME} here (make one with m1prep patch, or boot a Linux kernel with --kernel)`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new FormatError('manifest.json', 0n, `not JSON: ${(e as Error).message}`, file);
  }
  need(m && m.m1prep === MANIFEST_VERSION, file, `unsupported manifest version ${String(m?.m1prep)}`);
  need(m.guest === 'xnu' || m.guest === 'linux', file, `guest must be "xnu" or "linux"`);
  need(m.artifacts?.kernel && m.artifacts.devicetree && m.artifacts.layout, file, 'artifacts.kernel, .devicetree and .layout are required');
  need(Array.isArray(m.verify?.success) && Array.isArray(m.verify.failure), file, 'verify.success and verify.failure must be arrays');
  need(typeof m.machine?.cpus === 'number' && typeof m.machine.ramMiB === 'number', file, 'machine.cpus and machine.ramMiB are required');
  if (checkHashes) {
    for (const [role, a] of Object.entries(m.artifacts)) {
      if (!a) continue;
      const p = path.join(outDir, a.path);
      let data: Buffer;
      try {
        data = readFileSync(p);
      } catch {
        throw new FormatError('manifest.json', 0n, `artifact ${role}: ${a.path} is missing`, file);
      }
      need(sha256(data) === a.sha256, file, `artifact ${role}: ${a.path} does not match its sha256 (was it changed after m1prep patch?)`);
    }
  }
  return m;
}
