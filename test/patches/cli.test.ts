import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openContainer } from '../../src/macho/container.js';
import { readManifest, sha256 } from '../../src/manifest.js';
import { parseAdt } from '../../src/dtb/adt.js';
import { corpus, repoRoot, runCli } from '../helpers/cli.js';
import { canBuildSamples, sample } from './samples.js';
import type { SampleBuild } from '../../src/samples/build.js';

// `m1prep patch` as a user runs it, on the project's 12.3 sample collection built from source.

let s: SampleBuild;
const tmp = () => mkdtempSync(path.join(tmpdir(), 'm1prep-patch-cli-'));

describe.skipIf(!canBuildSamples)('m1prep patch on the 12.3 sample (needs clang and ld64.lld to build it)', () => {
  beforeAll(async () => {
    s = await sample('12.3');
  }, 600_000);

  it('writes a complete out/: patched kernel (raw and IM4P), ADT, ramdisk, layout, report, manifest', () => {
    const out = path.join(tmp(), 'out');
    const r = runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sample-platform-check\s+applied\s+com\.apple\.kernel\s+0xfffffe00070/);
    const m = readManifest(out, true); // checks every artifact's sha256
    expect(m).toMatchObject({ guest: 'xnu', profile: '12.3', darwin: '21.4.0', bootArgs: '-v serial=3 rd=md0 debug=0x14e', machine: { cpus: 4, ramMiB: 1024 } });
    expect(m.verify.success).toEqual(['M1PREP-SAMPLE-BOOT-OK']);
    expect(m.artifacts.ramdisk?.fs).toBe('hfsplus');
    const original = new Uint8Array(readFileSync(s.collection));
    const patched = new Uint8Array(readFileSync(path.join(out, m.artifacts.kernel.path)));
    // The IM4P holds exactly the raw patched collection.
    const c = openContainer(new Uint8Array(readFileSync(path.join(out, m.artifacts.kernelIm4p!.path))));
    expect(c.fourcc).toBe('krnl');
    expect(Buffer.compare(c.payload, patched)).toBe(0);
    // Only the bytes the report names changed, and they changed to what it says.
    const report = JSON.parse(readFileSync(path.join(out, 'patch-report.json'), 'utf8'));
    expect(report.summary).toMatchObject({ applied: 3, failed: 0 });
    expect(report.originalSha256).toBe(sha256(original));
    expect(report.patchedSha256).toBe(sha256(patched));
    const expected = Uint8Array.from(original);
    for (const p of report.patches) for (const e of p.edits) expected.set(Buffer.from(e.after, 'hex'), Number(BigInt(e.fileOffset)));
    expect(Buffer.compare(expected, patched)).toBe(0);
    // Disassembly before/after comes from Capstone: the guard functions now return 0.
    const platform = report.patches.find((p: { id: string }) => p.id === 'sample-platform-check');
    expect(platform.edits[0].disasmAfter).toEqual(['mov w0, #0', 'ret']);
    expect(platform.edits[0].disasmBefore[0]).toMatch(/^(sub sp, sp|stp x\d+, x\d+, \[sp|pacibsp)/);
    expect(parseAdt(new Uint8Array(readFileSync(path.join(out, 'devicetree.adt')))).children.length).toBeGreaterThan(0);
    expect(readFileSync(path.join(out, 'patch-report.txt'), 'utf8')).toMatch(/3 applied, 0 already applied, 0 failed/);
  });

  it('--ramdisk-fs and --device-tree override the profile (APFS ramdisk; the real j274 ADT from the corpus)', () => {
    const out = path.join(tmp(), 'out');
    const adt = path.join(corpus, 'devicetree/DeviceTree.j274ap.im4p');
    const r = runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--out', out, '--ramdisk-fs', 'apfs', ...(existsSync(adt) ? ['--device-tree', adt] : [])]);
    expect(r.code, r.stderr).toBe(0);
    const m = readManifest(out, true);
    expect(m.artifacts.ramdisk?.fs).toBe('apfs');
    // APFS container superblock: "NXSB" at offset 32 of block 0.
    expect(readFileSync(path.join(out, 'ramdisk.img')).subarray(32, 36).toString('latin1')).toBe('NXSB');
    if (existsSync(adt)) expect(m.inputs.find((i) => i.role === 'device-tree-base')?.path).toBe(adt);
  });

  it('--dry-run reports and writes nothing; --json gives the report', () => {
    const out = path.join(tmp(), 'out');
    const r = runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--dry-run', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run: nothing written/);
    expect(existsSync(out)).toBe(false);
    const j = runCli(['patch', '--profile', '12.3', '--kernelcache', s.collection, '--dry-run', '--json']);
    expect(JSON.parse(j.stdout).patches.map((p: { status: string }) => p.status)).toEqual(['applied', 'applied', 'applied']);
  });

  it('--revert restores the original collection byte for byte; re-patching the output is refused', () => {
    const out = path.join(tmp(), 'out');
    expect(runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--out', out]).code).toBe(0);
    const rv = runCli(['patch', '--revert', out]);
    expect(rv.code, rv.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(path.join(out, 'kernelcache.original.macho')), readFileSync(s.collection))).toBe(0);
    const again = path.join(tmp(), 'again');
    const rp = runCli(['patch', '--profile', '12.3', '--kernelcache', path.join(out, 'kernelcache.im4p'), '--out', again]);
    expect(rp.code).toBe(3);
    expect(rp.stderr).toMatch(/is already patched \(sample-platform-check, sample-sep-wait, sample-kext-signature already in place\)/);
    expect(existsSync(again)).toBe(false);
    // A tampered output is not "reverted" into something else.
    const k = readFileSync(path.join(out, 'kernelcache.macho'));
    k[k.length - 1] ^= 0xff;
    writeFileSync(path.join(out, 'kernelcache.macho'), k);
    const bad = runCli(['patch', '--revert', out]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/is not the .* the report recorded: it changed after m1prep patch wrote it/);
  });

  it('a required patch that no longer matches stops the run: file:line, scope, nearest partial matches; out/ untouched', () => {
    const d = tmp();
    for (const sub of ['patches', 'profiles', 'layouts']) cpSync(path.join(repoRoot, sub), path.join(d, sub), { recursive: true });
    for (const sub of ['ramdisk', 'devicetree']) cpSync(path.join(repoRoot, 'samples', sub), path.join(d, 'samples', sub), { recursive: true });
    // The kext guard "changed" in a new release: the pattern expects cbz where the code has cbnz.
    const f = path.join(d, 'patches', 'code-signing.yaml');
    const text = readFileSync(f, 'utf8').replace(/      - string: "AMFI: no trust cache loaded:"\n        partial: true\n/, '').replace('"cbnz w0, *"', '"cbz w0, *"');
    writeFileSync(f, text);
    const out = path.join(d, 'out');
    mkdirSync(out);
    writeFileSync(path.join(out, 'keep.txt'), 'previous output');
    const r = runCli(['patch', '--profile', path.join(d, 'profiles', '12.3.yaml'), '--kernelcache', s.im4p, '--out', out]);
    expect(r.code).toBe(3);
    const line = text.split('\n').findIndex((l) => l.includes('- id: sample-kext-signature')) + 1;
    expect(r.stderr).toContain(`sample-kext-signature [code-signing] FAILED  (${f}:${line}; target com.m1prep.sample.b`);
    expect(r.stderr).toMatch(/searched:\n\s+com\.m1prep\.sample\.b __TEXT,__text 0xfffffe00070[0-9a-f]+-0xfffffe00070[0-9a-f]+/);
    expect(r.stderr).toMatch(/nearest partial matches:\n\s+0xfffffe00070[0-9a-f]+ \(file offset 0x[0-9a-f]+\): 2\/3 instructions agree; instruction 2 differs: expected "cbz w0, \*", found "cbnz w0, #0xfffffe00070[0-9a-f]+ \(0x[0-9a-f]{8}\)"/);
    expect(r.stderr).toMatch(/m1prep: 1 required patch did not match \(sample-kext-signature at .*code-signing\.yaml:\d+\); nothing was written/);
    expect(readdirSync(out)).toEqual(['keep.txt']);
  });

  it('refuses a kernel of another Darwin version, unknown --exclude-patch ids, and mixed modes', () => {
    const r = runCli(['patch', '--profile', '14.x', '--kernelcache', s.im4p, '--dry-run']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/the kernel is Darwin 21\.4\.0, but profile 14\.x accepts Darwin 23\.0\.\.23\.6: use --profile 12\.3/);
    const x = runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--dry-run', '--exclude-patch', 'nope']);
    expect(x.code).toBe(2);
    expect(x.stderr).toMatch(/--exclude-patch nope: no such patch in profile 12\.3/);
    expect(runCli(['patch', '--check', 'profiles/12.3.yaml', '--revert', '/tmp']).code).toBe(2);
    expect(runCli(['patch', '--profile', 'nope', '--kernelcache', s.im4p, '--dry-run']).code).toBe(2);
  });

  it('--exclude-patch leaves a guard in place and says so', () => {
    const r = runCli(['patch', '--profile', '12.3', '--kernelcache', s.im4p, '--dry-run', '--json', '--exclude-patch', 'sample-sep-wait']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.summary).toMatchObject({ applied: 2, excluded: 1 });
    expect(rep.patches.find((p: { id: string }) => p.id === 'sample-sep-wait')).toMatchObject({ status: 'excluded', edits: [] });
  });

  it('--help shows examples', () => {
    const h = runCli(['patch', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Examples:\n\s+m1prep patch --profile 12\.3 --kernelcache/);
    expect(h.stdout).toMatch(/--exclude-patch +leave this patch out \(repeatable\)/);
  });
});
