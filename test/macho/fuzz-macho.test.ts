import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { FormatError } from '../../src/errors.js';
import { parseMachO } from '../../src/macho/macho.js';
import { parseChainedFixups, walkChainedFixups } from '../../src/macho/fixups.js';
import { walkThreadedFixups } from '../../src/macho/fixups-threaded.js';
import { decodeBinds, decodeRebases } from '../../src/macho/dyld-info.js';
import { exportsOf } from '../../src/macho/exports-trie.js';
import { parseSymtab } from '../../src/macho/symtab.js';
import { parseCodeSignature } from '../../src/macho/codesign.js';
import { filesetEntries, openEntry } from '../../src/macho/fileset.js';
import { listKexts } from '../../src/macho/kext.js';
import { summarizeMachO } from '../../src/macho/macho-summary.js';
import { extractImage, extractTargets, collectionFixups } from '../../src/macho/kext-extract.js';
import { imageFixups } from '../../src/macho/fixups-image.js';
import { buildFileset } from '../../src/macho/fileset-builder.js';
import { buildKcFixtures, toolchainMissing } from '../fixtures/kc/build.js';

// Thousands of mutations of real Mach-Os through every reader: only FormatError may come out.

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function everything(b: Uint8Array): void {
  const m = parseMachO(b);
  summarizeMachO(m);
  parseSymtab(m);
  exportsOf(m);
  decodeRebases(m);
  decodeBinds(m, 'bind');
  decodeBinds(m, 'lazy_bind');
  decodeBinds(m, 'weak_bind');
  walkThreadedFixups(m);
  walkChainedFixups(m, parseChainedFixups(m));
  parseCodeSignature(m);
  imageFixups(m);
  if (m.header.filetype === 0xc) {
    for (const e of filesetEntries(m)) openEntry(m, e);
    listKexts(m);
    const slotted = collectionFixups(m);
    for (const t of extractTargets(m)) extractImage(m, t.headerOffset, slotted);
  }
}

function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const b = src.slice();
  const hdrEnd = Math.min(b.length, 32 + (b[20]! | (b[21]! << 8) | (b[22]! << 16)));
  const kind = r();
  if (kind < 0.1) return b.subarray(0, Math.floor(r() * b.length));
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    // Mostly the header and load commands (where the structure is), sometimes anywhere.
    const at = r() < 0.7 ? Math.floor(r() * hdrEnd) : Math.floor(r() * b.length);
    const how = r();
    if (how < 0.4) b[at] = Math.floor(r() * 256);
    else if (how < 0.6) b[at] ^= 1 << Math.floor(r() * 8);
    else if (how < 0.8) new DataView(b.buffer).setUint32(at & ~3, [0, 0xffffffff, 0x80000000, 8, 0x7fffffff][Math.floor(r() * 5)]!, true);
    else b[at] = 0;
  }
  return b;
}

const seeds: { name: string; bytes: Uint8Array }[] = [
  'macho/hello-mte',
  'macho/hello-macos-arm64-chained',
  'macho/TestMacOS-arm64e',
  'macho/objc-employee-ios14-arm64',
  'kernel/dyld-kc-tests/kext-vtable-patching-arm64e/extensions/bar.kext/bar',
  'kernel/dyld-kc-tests/fixups-arm64e/main.kernel',
].map((p) => ({ name: p, bytes: new Uint8Array(readFileSync(path.join(corpus, p))) }));

// ls-m1's arm64e slice has threaded binds.
{
  const fat = new Uint8Array(readFileSync(path.join(corpus, 'macho/ls-m1')));
  const dvw = new DataView(fat.buffer);
  for (let i = 0; i < dvw.getUint32(4); i++) {
    const off = dvw.getUint32(8 + i * 20 + 8);
    const size = dvw.getUint32(8 + i * 20 + 12);
    if (dvw.getUint32(8 + i * 20 + 4) === 2) seeds.push({ name: 'macho/ls-m1 [arm64e]', bytes: fat.slice(off, off + size) });
  }
}

const PER_SEED = Number(process.env.M1PREP_FUZZ_PER_SEED ?? 400);

describe('Mach-O fuzz', () => {
  it('fuzzed corpus files end in FormatError or parse', () => {
    for (const f of ['macho/fuzzed/nullpointerdereference-fileset', 'macho/fuzzed/xnu-kernelcache-oobread']) {
      const b = new Uint8Array(readFileSync(path.join(corpus, f)));
      try {
        everything(b);
      } catch (e) {
        expect(e, f).toBeInstanceOf(FormatError);
      }
    }
  });

  it(`${PER_SEED} mutations of each corpus seed (and a built collection): only FormatError`, () => {
    const all = [...seeds];
    if (!toolchainMissing()) {
      const fx = buildKcFixtures();
      all.push({
        name: 'built collection',
        bytes: buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist }, { id: 'com.example.kextb', macho: readFileSync(fx.kextb) }] }),
      });
    }
    let formatErrors = 0;
    let parsed = 0;
    for (const [si, s] of all.entries()) {
      everything(s.bytes);
      const r = rng(1000 + si);
      for (let i = 0; i < PER_SEED; i++) {
        const b = mutate(s.bytes, r);
        try {
          everything(b);
          parsed++;
        } catch (e) {
          if (!(e instanceof FormatError)) throw new Error(`${s.name} mutation ${i} (seed ${1000 + si}): ${(e as Error).stack}`);
          formatErrors++;
        }
      }
    }
    expect(formatErrors).toBeGreaterThan(100);
    expect(parsed).toBeGreaterThan(100);
  }, 60_000);
});
