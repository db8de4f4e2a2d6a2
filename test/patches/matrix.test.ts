import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SampleBuild } from '../../src/samples/build.js';
import { runCli } from '../helpers/cli.js';
import { guardsKernel } from './helpers.js';
import { allSamples, canBuildSamples } from './samples.js';

// The version matrix over the project's own sample collections: one per shipped profile, each
// built from source for its Darwin version, every profile's patches dry-run against it.

let samples: SampleBuild[];
let dir: string;

describe.skipIf(!canBuildSamples)('m1prep matrix over the sample collections (needs clang and ld64.lld)', () => {
  beforeAll(async () => {
    samples = await allSamples();
    dir = mkdtempSync(path.join(tmpdir(), 'm1prep-matrix-'));
    for (const s of samples) {
      mkdirSync(path.join(dir, s.flavour.profile));
      copyFileSync(s.im4p, path.join(dir, s.flavour.profile, 'kernelcache.im4p'));
    }
  }, 600_000);

  it('matches each collection to the profile of its Darwin version, and every guard patch applies', () => {
    const r = runCli(['matrix', '--kernelcaches', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { rows, failed } = JSON.parse(r.stdout) as { rows: { kernelcache: string; darwin: string; profile: string; patches: { id: string; status: string }[] }[]; failed: boolean };
    expect(failed).toBe(false);
    expect(rows.map((x) => [path.basename(path.dirname(x.kernelcache)), x.darwin, x.profile])).toEqual(
      samples.map((s) => [s.flavour.profile, s.flavour.darwin, s.flavour.profile]),
    );
    for (const row of rows) {
      expect(row.patches.map((p) => `${p.id}:${p.status}`)).toEqual(['sample-platform-check:applied', 'sample-sep-wait:applied', 'sample-kext-signature:applied']);
    }
  });

  it('prints a table and a Markdown table with one column per collection', () => {
    const t = runCli(['matrix', '--kernelcaches', dir]);
    expect(t.code).toBe(0);
    const lines = t.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^patch\s+11\.x\/kernelcache\.im4p \(11\.x, Darwin 20\.6\.0\)/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['sample-platform-check', 'sample-sep-wait', 'sample-kext-signature']);
    const md = runCli(['matrix', '--kernelcaches', dir, '--markdown']);
    expect(md.stdout.split('\n')[1]).toBe(`|${Array(samples.length + 1).fill('---').join('|')}|`);
    expect(md.stdout).toMatch(/\| sample-sep-wait \| applied \| applied \|/);
  });

  it('a kernel the profile\'s patches do not fit fails the matrix (exit 3) and says which patch', () => {
    const d = mkdtempSync(path.join(tmpdir(), 'm1prep-matrix-'));
    copyFileSync(guardsKernel().file, path.join(d, 'other.macho')); // Darwin 21.4.0, but not the sample's code
    copyFileSync(samples[0]!.im4p, path.join(d, 'kernelcache.im4p'));
    const r = runCli(['matrix', '--kernelcaches', d, '--json']);
    expect(r.code).toBe(3);
    const { rows } = JSON.parse(r.stdout) as { rows: { kernelcache: string; profile: string; patches: { id: string; status: string; note?: string }[] }[] };
    const other = rows.find((x) => x.kernelcache.endsWith('other.macho'))!;
    expect(other.profile).toBe('12.3');
    expect(other.patches.find((p) => p.id === 'sample-kext-signature')).toMatchObject({ status: 'failed', note: 'target com.m1prep.sample.b is not in this collection' });
    expect(rows.find((x) => x.kernelcache.endsWith('kernelcache.im4p'))!.patches.every((p) => p.status === 'applied')).toBe(true);
  });

  it('a kernel no profile accepts is listed as such', () => {
    const d = mkdtempSync(path.join(tmpdir(), 'm1prep-matrix-'));
    copyFileSync(samples[0]!.im4p, path.join(d, 'kernelcache.im4p'));
    const r = runCli(['matrix', '--kernelcaches', d, '--profile', '15.x', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).rows[0]).toMatchObject({ profile: null, note: `no profile accepts Darwin ${samples[0]!.flavour.darwin}` });
  });
});
