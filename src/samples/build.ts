import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { HostError, M1prepError } from '../errors.js';
import { tool } from '../host/tools.js';
import { buildFileset } from '../macho/fileset-builder.js';
import { packIm4p } from '../macho/container.js';
import { writeFileAtomicSync } from '../util/atomic-write.js';
import { buildSampleBaseAdt } from './base-adt.js';
import { macosMajor, type SampleFlavour } from './flavours.js';
import { BASE_ADT_NAME } from './paths.js';

// Builds one flavour of the sample guest from source: clang compiles the kernel and the two kexts
// for arm64-apple-macos, ld64.lld links the kernel (MH_EXECUTE) and the kexts (bundles whose
// imports resolve against the kernel), the fileset builder makes the MH_FILESET collection, and it
// is packed as an IM4P with LZFSE, like Apple's kernelcache. A stamp over the sources, flags and
// tools makes a second build of unchanged sources a no-op.

export const KEXTS = [
  { id: 'com.m1prep.sample.a', dir: 'sample-a' },
  { id: 'com.m1prep.sample.b', dir: 'sample-b' },
] as const;

export interface SampleBuild {
  flavour: SampleFlavour;
  dir: string;
  /** Raw MH_FILESET collection. */
  collection: string;
  /** The collection as IM4P (krnl, LZFSE): what `m1prep patch --kernelcache` takes. */
  im4p: string;
  cached: boolean;
}

export interface BuildOptions {
  /** samples/ of the repository (holds xnu-guest/). */
  sampleRoot: string;
  /** Where flavours go (one sub-directory each). */
  outRoot: string;
  force?: boolean;
  onStep?: (step: string) => void;
}

const CFLAGS = [
  '-O2', '-ffreestanding', '-fno-builtin', '-nostdlib', '-mgeneral-regs-only', '-fno-stack-protector', '-fno-common',
  // Data accesses before the MMU is on go to Device memory, where unaligned accesses fault.
  '-mstrict-align', '-Wall', '-Wextra', '-Werror',
];

function run(cmd: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => { text += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { text += d.toString(); });
    child.on('error', (e) => reject(new HostError(`${what}: cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new M1prepError(`${what} failed (${path.basename(cmd)} exit ${code}):\n${text.trim().split('\n').slice(0, 12).join('\n')}`));
    });
  });
}

/** Run jobs with at most `width` at a time (the compiler processes are the slow part). */
async function pool<T>(items: T[], width: number, job: (item: T) => Promise<string>): Promise<string[]> {
  const out: string[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await job(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, items.length)) }, worker));
  return out;
}

function sourcesOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = path.join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

function toolchain(): { clang: string; ld: string } {
  const clang = tool('clang');
  const ld = tool('ld64.lld');
  if (!clang || !ld) throw new HostError(`building the sample needs clang and ld64.lld (Debian: clang lld; run scripts/setup.sh); missing: ${[!clang && 'clang', !ld && 'ld64.lld'].filter(Boolean).join(', ')}`);
  return { clang, ld };
}

export async function buildSample(flavour: SampleFlavour, opts: BuildOptions): Promise<SampleBuild> {
  const src = path.join(opts.sampleRoot, 'xnu-guest');
  const dir = path.join(opts.outRoot, flavour.profile);
  const result = { flavour, dir, collection: path.join(dir, 'kernelcache.macho'), im4p: path.join(dir, 'kernelcache.im4p') };
  const { clang, ld } = toolchain();
  const target = `arm64-apple-macos${macosMajor(flavour)}`;
  const defines = [`-DBOOT_LINE_LENGTH=${flavour.bootLineLength}`, `-DDARWIN_VERSION="${flavour.darwin}"`];
  const cflags = ['-target', target, ...CFLAGS, `-I${path.join(src, 'include')}`, ...defines];

  const files = sourcesOf(src);
  const stamp = createHash('sha256').update(JSON.stringify({ flavour, cflags: cflags.map((f) => f.replace(src, '')), clang, ld }));
  for (const f of files) stamp.update(path.relative(src, f)).update(readFileSync(f));
  const digest = stamp.digest('hex');
  const stampFile = path.join(dir, 'build.json');
  if (!opts.force && existsSync(stampFile) && existsSync(result.im4p) && existsSync(result.collection)) {
    try {
      if ((JSON.parse(readFileSync(stampFile, 'utf8')) as { stamp?: string }).stamp === digest) return { ...result, cached: true };
    } catch { /* rebuild */ }
  }

  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(path.join(dir, '.obj-'));
  try {
    const compile = async (file: string): Promise<string> => {
      const obj = path.join(work, path.relative(src, file).replace(/[/\\]/g, '_') + '.o');
      await run(clang, [...cflags, '-c', file, '-o', obj], `compiling ${path.relative(opts.sampleRoot, file)}`);
      return obj;
    };
    const jobs = availableParallelism();
    const platform = ['-arch', 'arm64', '-platform_version', 'macos', `${macosMajor(flavour)}.0`, `${macosMajor(flavour)}.0`];
    opts.onStep?.(`compile kernel (${target}, Darwin ${flavour.darwin}, BOOT_LINE_LENGTH ${flavour.bootLineLength})`);
    const kobjs = await pool(files.filter((f) => f.startsWith(path.join(src, 'kernel') + path.sep) && /\.(c|S)$/.test(f)), jobs, compile);
    const kernelPath = path.join(work, 'kernel');
    opts.onStep?.('link kernel (ld64.lld, MH_EXECUTE)');
    await run(ld, [...platform, '-execute', '-e', '__start', '-o', kernelPath, ...kobjs], 'linking the kernel');
    const kexts = [];
    for (const k of KEXTS) {
      opts.onStep?.(`compile and link kext ${k.id}`);
      const kdir = path.join(src, 'kexts', k.dir);
      const objs = await pool(files.filter((f) => f.startsWith(kdir + path.sep) && f.endsWith('.c')), jobs, compile);
      const out = path.join(work, k.id);
      // Imports resolve against the kernel (ordinal "main executable"); no lazy binding in a collection.
      await run(ld, [...platform, '-bundle', '-bundle_loader', kernelPath, '-o', out, ...objs], `linking kext ${k.id}`);
      kexts.push({ id: k.id, macho: new Uint8Array(readFileSync(out)), infoPlist: readFileSync(path.join(kdir, 'Info.plist'), 'utf8') });
    }
    opts.onStep?.('build the MH_FILESET collection (chained fixups, imports bound)');
    const kernel = readFileSync(kernelPath);
    // The builder gets copies: the linker's outputs are kept as they were (for llvm-objdump).
    const collection = buildFileset({ kernel: new Uint8Array(kernel), kexts: kexts.map((k) => ({ ...k, macho: new Uint8Array(k.macho) })) });
    opts.onStep?.('pack IM4P (krnl, LZFSE)');
    const im4p = packIm4p({ fourcc: 'krnl', description: `m1prep sample kernelcache, Darwin ${flavour.darwin}`, payload: collection, compression: 'lzfse' });
    writeFileAtomicSync(path.join(dir, 'kernel'), kernel);
    for (const k of KEXTS) writeFileAtomicSync(path.join(dir, k.id), readFileSync(path.join(work, k.id)));
    writeFileAtomicSync(result.collection, collection);
    writeFileAtomicSync(result.im4p, im4p);
    writeFileAtomicSync(stampFile, new TextEncoder().encode(JSON.stringify({ stamp: digest, flavour, bytes: collection.length, im4pBytes: im4p.length }, null, 2) + '\n'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { ...result, cached: false };
}

/** The sample's base Apple device tree, built into outRoot (every flavour shares it). */
export function buildSampleDeviceTree(opts: BuildOptions): string {
  const out = path.join(opts.outRoot, BASE_ADT_NAME);
  mkdirSync(opts.outRoot, { recursive: true });
  writeFileAtomicSync(out, buildSampleBaseAdt(path.join(opts.sampleRoot, 'devicetree', 't8103-sample.yaml')));
  return out;
}
