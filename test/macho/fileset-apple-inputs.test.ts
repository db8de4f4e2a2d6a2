import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { tool, which } from '../../src/host/tools.js';
import { buildFileset, DEFAULT_KC_BASE } from '../../src/macho/fileset-builder.js';
import { parseMachO, findSegment } from '../../src/macho/macho.js';
import { filesetEntries } from '../../src/macho/fileset.js';
import { parseChainedFixups, walkChainedFixups } from '../../src/macho/fixups.js';
import { listKexts } from '../../src/macho/kext.js';
import { extractImage, collectionFixups } from '../../src/macho/kext-extract.js';
import { objdump19Chained, objdump19Path, objdumpHeaders } from '../fixtures/kc/llvm.js';

// The builder fed with Apple's own kernel-collection test inputs (built by Apple's toolchain):
// arm64e kexts whose DYLD_CHAINED_PTR_ARM64E_KERNEL pointers are signed (key, diversity,
// address diversity) must keep that in the collection's DYLD_CHAINED_PTR_64_KERNEL_CACHE entries;
// kext-to-kext binds must land on the defining kext's symbol (llvm-nm says where it is).

const C = path.join(corpus, 'kernel/dyld-kc-tests');
const out = mkdtempSync(path.join(os.tmpdir(), 'm1prep-kc-apple-'));

function inputs(test: string, names: string[]) {
  return names.map((n) => ({
    id: `com.apple.${n}`,
    file: path.join(C, test, `extensions/${n}.kext/${n}`),
    macho: new Uint8Array(readFileSync(path.join(C, test, `extensions/${n}.kext/${n}`))),
    infoPlist: readFileSync(path.join(C, test, `extensions/${n}.kext/Info.plist`), 'utf8'),
  }));
}

function build(test: string, names: string[]) {
  const kexts = inputs(test, names);
  const kernelFile = path.join(C, test, 'main.kernel');
  const kc = buildFileset({ kernel: readFileSync(kernelFile), kexts });
  const m = parseMachO(kc);
  const walked = walkChainedFixups(m, parseChainedFixups(m), DEFAULT_KC_BASE);
  const files: Record<string, string> = { 'com.apple.kernel': kernelFile, ...Object.fromEntries(kexts.map((k) => [k.id, k.file])) };
  const delta = new Map(filesetEntries(m).map((e) => [e.id, e.vmaddr - findSegment(parseMachO(new Uint8Array(readFileSync(files[e.id]!))), '__TEXT')!.vmaddr]));
  return { kc, m, walked: new Map(walked.map((f) => [f.address, f])), files, delta };
}

describe('fileset builder with Apple-built inputs (dyld kernel-collection tests)', () => {
  it('fixups-arm64e: every signed pointer keeps key, diversity and address diversity; targets move with their image', () => {
    const b = build('fixups-arm64e', ['foo', 'bar']);
    let auth = 0;
    for (const [id, file] of Object.entries(b.files)) {
      const im = parseMachO(new Uint8Array(readFileSync(file)));
      const d = b.delta.get(id)!;
      for (const f of walkChainedFixups(im)) {
        const o = b.walked.get(f.address + d);
        expect(o, `${id} slot 0x${f.address.toString(16)}`).toBeDefined();
        expect(o!.target).toBe(f.target! + d);
        expect(o!.auth).toEqual(f.auth);
        if (f.auth) auth++;
      }
    }
    expect(auth).toBeGreaterThan(0);
    expect(listKexts(b.m).map((k) => k.id)).toEqual(['com.apple.foo', 'com.apple.bar']);
  });

  it.skipIf(!which(['llvm-nm', 'llvm-nm-14']))('kext-bind-to-kext: bar\'s imports bind to foo\'s symbols where llvm-nm puts them', () => {
    const b = build('kext-bind-to-kext-arm64-chains', ['foo', 'bar']);
    const nm = spawnSync(which(['llvm-nm', 'llvm-nm-14'])!, ['--defined-only', '--extern-only', b.files['com.apple.foo']!], { encoding: 'utf8' }).stdout;
    const fooSyms = new Map(nm.trim().split('\n').map((l) => { const [a, , n] = l.split(/\s+/); return [n!, BigInt('0x' + a)]; }));
    const bar = parseMachO(new Uint8Array(readFileSync(b.files['com.apple.bar']!)));
    const fx = parseChainedFixups(bar)!;
    if (objdump19Path()) expect(objdump19Chained(b.files['com.apple.bar']!).imports.map((i) => i.name)).toEqual(fx.imports.map((i) => i.name));
    let binds = 0;
    for (const f of walkChainedFixups(bar, fx)) {
      if (f.kind !== 'bind') continue;
      const name = fx.imports[f.ordinal!]!.name;
      const o = b.walked.get(f.address + b.delta.get('com.apple.bar')!)!;
      expect(o.target, name).toBe(fooSyms.get(name)! + b.delta.get('com.apple.foo')! + f.addend!);
      binds++;
    }
    expect(binds).toBeGreaterThan(0);
  });

  it.skipIf(!tool('llvm-objdump'))('every entry extracts to a Mach-O llvm-objdump accepts', () => {
    for (const [test, names] of [['fixups-arm64e', ['foo', 'bar']], ['kext-bind-to-kext-arm64-chains', ['foo', 'bar']]] as const) {
      const b = build(test, [...names]);
      const slotted = collectionFixups(b.m);
      for (const e of filesetEntries(b.m)) {
        const f = path.join(out, `${test}-${e.id}`);
        writeFileSync(f, extractImage(b.m, Number(e.fileoff), slotted));
        const h = objdumpHeaders(f);
        expect(h.code, h.err).toBe(0);
        expect(h.err).toBe('');
      }
    }
  });

  it('kext-vtable-patching needs vtable patching, which the builder does not do: a clear error', () => {
    expect(() => build('kext-vtable-patching-arm64e', ['foo', 'bar', 'baz'])).toThrow(/com\.apple\.bar.*undefined symbol __ZN3Foo13_RESERVEDFoo0Ev/);
  });
});
