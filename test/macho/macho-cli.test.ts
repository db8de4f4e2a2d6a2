import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, corpus } from '../helpers/cli.js';
import { tool } from '../../src/host/tools.js';
import { buildFileset } from '../../src/macho/fileset-builder.js';
import { packIm4p } from '../../src/macho/container.js';
import { buildKcFixtures, toolchainMissing } from '../fixtures/kc/build.js';
import { objdumpHeaders } from '../fixtures/kc/llvm.js';

// The commands as the team scripts them: info, kexts, extract on corpus files and on a collection
// built from the test sources, wrapped in IM4P; JSON conventions; bad input -> one line, exit 1.

const tmp = mkdtempSync(path.join(os.tmpdir(), 'm1prep-macho-cli-'));
const missing = toolchainMissing();

describe('m1prep info', () => {
  it('describes a fat binary (default slice arm64e, --arch picks another) against llvm-objdump', () => {
    const f = path.join(corpus, 'macho/ls-sequoia');
    const r = runCli(['info', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.fat.slices.map((s: { arch: string }) => s.arch)).toEqual(['x86_64', 'arm64e']);
    expect(j.macho.arch).toBe('arm64e');
    expect(j.macho.fixups.chained).toEqual(['DYLD_CHAINED_PTR_ARM64E']);
    if (tool('llvm-objdump')) {
      const h = objdumpHeaders(f, ['--arch=arm64e']);
      expect(j.macho.uuid).toBe(h.uuid);
      expect(j.macho.segments.map((s: { name: string; vmaddr: string }) => [s.name, s.vmaddr])).toEqual(h.segments.map((s) => [s.segname, '0x' + s.vmaddr.toString(16)]));
    }
    const x = JSON.parse(runCli(['info', f, '--json', '--arch', 'x86_64']).stdout);
    expect(x.macho.arch).toBe('x86_64');
    expect(x.macho.fixups.dyldInfo).toBe(true);
    const bad = runCli(['info', f, '--arch', 'ppc']);
    expect(bad.code).toBe(2);
  });

  it('shows an IM4P container and says when the payload is not a Mach-O', () => {
    const r = runCli(['info', path.join(corpus, 'devicetree/DeviceTree.j274ap.im4p'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.container.layers).toEqual(['im4p:dtre', 'lzfse']);
    expect(j.macho).toBeUndefined();
  });

  it('bad input: one line, exit 1, no stack', () => {
    for (const f of ['macho/fuzzed/nullpointerdereference-fileset', 'macho/fuzzed/xnu-kernelcache-oobread']) {
      const r = runCli(['info', path.join(corpus, f)]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`${path.basename(f)}: offset 0x[0-9a-f]+: `));
    }
  });
});

describe.skipIf(missing !== undefined)('m1prep kexts / extract on a built collection in an IM4P', () => {
  let im4p: string;
  beforeAll(() => {
    const fx = buildKcFixtures();
    const kc = buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist }, { id: 'com.example.kextb', macho: readFileSync(fx.kextb) }] });
    im4p = path.join(tmp, 'kc.im4p');
    writeFileSync(im4p, packIm4p({ fourcc: 'krnl', payload: kc, compression: 'lzfse' }));
  });

  it('info: container, Darwin version, entries, fixup format', () => {
    const j = JSON.parse(runCli(['info', im4p, '--json']).stdout);
    expect(j.container.layers).toEqual(['im4p:krnl', 'lzfse']);
    expect(j.macho.filetype).toBe('MH_FILESET');
    expect(j.macho.filesetEntries).toBe(3);
    expect(j.macho.entries.map((e: { id: string }) => e.id)).toEqual(['com.apple.kernel', 'com.example.kexta', 'com.example.kextb']);
    expect(j.macho.entries[0].vmaddr).toBe(j.macho.segments[1].vmaddr);
    expect(j.macho.darwinVersion).toMatchObject({ major: 21, minor: 4, patch: 0 });
    expect(j.macho.fixups.chained).toEqual(['DYLD_CHAINED_PTR_64_KERNEL_CACHE']);
    expect(j.macho.entry.source).toBe('LC_UNIXTHREAD');
    expect(j.macho.entry.vmaddr).toMatch(/^0xfffffe00070/);
    const human = runCli(['info', im4p]);
    expect(human.stdout).toMatch(/darwin\s+21\.4\.0/);
  });

  it('kexts: rows with versions, 64-bit values as hex strings', () => {
    const r = runCli(['kexts', im4p, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout).kexts;
    expect(rows.map((k: { id: string; version: string }) => [k.id, k.version])).toEqual([['com.example.kexta', '1.4.2'], ['com.example.kextb', '2.0.1']]);
    for (const k of rows) expect(k.vmaddr).toMatch(/^0x[0-9a-f]+$/);
    expect(runCli(['kexts', im4p]).stdout).toMatch(/com\.example\.kextb\s+2\.0\.1\s+0x/);
  });

  it('extract: --kext, --kernel, --all; outputs llvm-objdump accepts; unknown id is a usage error', () => {
    const out = path.join(tmp, 'one');
    expect(runCli(['extract', im4p, '--kext', 'com.example.kextb', '--out', out]).code).toBe(0);
    expect(readdirSync(out)).toEqual(['com.example.kextb']);
    const all = path.join(tmp, 'all');
    const r = runCli(['extract', im4p, '--all', '--kernel', '-o', all, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).extracted.map((e: { id: string }) => e.id)).toEqual(['com.apple.kernel', 'com.example.kexta', 'com.example.kextb']);
    if (tool('llvm-objdump')) {
      for (const f of readdirSync(all)) {
        const h = objdumpHeaders(path.join(all, f));
        expect(h.code, h.err).toBe(0);
        expect(h.err).toBe('');
      }
    }
    const bad = runCli(['extract', im4p, '--kext', 'com.nope', '--out', path.join(tmp, 'nope')]);
    expect(bad.code).toBe(2);
    expect(existsSync(path.join(tmp, 'nope'))).toBe(false);
    expect(runCli(['extract', im4p, '--out', path.join(tmp, 'x')]).code).toBe(2);
  });
});
