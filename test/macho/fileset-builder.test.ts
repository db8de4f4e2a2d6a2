import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tool } from '../../src/host/tools.js';
import { FormatError } from '../../src/errors.js';
import { buildFileset, DEFAULT_KC_BASE } from '../../src/macho/fileset-builder.js';
import { parseMachO, serializeMachO, entryPoint, findSegment, uuidString, vmToFileOffset, type MachO } from '../../src/macho/macho.js';
import { filesetEntries, openEntry } from '../../src/macho/fileset.js';
import { parseChainedFixups, walkChainedFixups, DYLD_CHAINED_PTR_64_KERNEL_CACHE } from '../../src/macho/fixups.js';
import { listKexts } from '../../src/macho/kext.js';
import { extractImage, collectionFixups } from '../../src/macho/kext-extract.js';
import { findDarwinVersion } from '../../src/macho/macho-darwin-version.js';
import { u64 } from '../../src/macho/macho-bytes.js';
import { buildKcFixtures, toolchainMissing, type KcFixtures } from '../fixtures/kc/build.js';
import { objdump19Chained, objdump19Path, objdumpBinds, objdumpExports, objdumpHeaders, objdumpRebases } from '../fixtures/kc/llvm.js';

const missing = toolchainMissing() ?? (tool('llvm-objdump') ? undefined : 'llvm-objdump not installed');
if (missing) console.warn(`fileset builder tests skipped: ${missing}`);

describe.skipIf(missing !== undefined)('fileset builder (clang + ld64.lld inputs)', () => {
  let fx: KcFixtures;
  let kc: Uint8Array;
  let m: MachO;
  let inputs: Record<string, string>;
  let out: string;

  beforeAll(() => {
    fx = buildKcFixtures();
    inputs = { 'com.apple.kernel': fx.kernel, 'com.example.kexta': fx.kexta, 'com.example.kextb': fx.kextb };
    kc = buildFileset({
      kernel: readFileSync(fx.kernel),
      kexts: [
        { id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist },
        { id: 'com.example.kextb', macho: readFileSync(fx.kextb) },
      ],
    });
    out = mkdtempSync(path.join(os.tmpdir(), 'm1prep-kc-out-'));
    m = parseMachO(kc);
  });

  it('writes an MH_FILESET whose entries are the kernel and the kexts, 16 KiB aligned', () => {
    expect(m.header.filetype).toBe(0xc);
    const entries = filesetEntries(m);
    expect(entries.map((e) => e.id)).toEqual(['com.apple.kernel', 'com.example.kexta', 'com.example.kextb']);
    expect(m.segments[0]!.vmaddr).toBe(DEFAULT_KC_BASE);
    for (const s of m.segments) {
      expect(s.vmaddr % 16384n).toBe(0n);
      expect(s.fileoff).toBe(s.vmaddr - DEFAULT_KC_BASE);
    }
    for (const e of entries) {
      const em = openEntry(m, e);
      expect(em.segments.find((s) => s.segname === '__PAGEZERO')).toBeUndefined();
      for (const s of em.segments) for (const c of s.sections) if (c.offset) expect(BigInt(c.offset) - s.fileoff).toBe(c.addr - s.vmaddr);
    }
  });

  it('reads back byte for byte through the serializer (top level and every entry view)', () => {
    expect(Buffer.compare(serializeMachO(m), kc)).toBe(0);
    for (const e of filesetEntries(m)) expect(Buffer.compare(serializeMachO(openEntry(m, e)), kc), e.id).toBe(0);
  });

  it('finds the kernel version and entry point', () => {
    const kernel = openEntry(m, filesetEntries(m)[0]!);
    const v = findDarwinVersion(kernel)!;
    expect([v.major, v.minor, v.patch]).toEqual([21, 4, 0]);
    // The input's LC_MAIN entryoff, from the kernel's header (now at the entry's vmaddr), became
    // an LC_UNIXTHREAD pc as XNU's loaders expect.
    const inK = objdumpHeaders(fx.kernel);
    expect(entryPoint(kernel)).toEqual({ vmaddr: filesetEntries(m)[0]!.vmaddr + inK.entryoff!, source: 'LC_UNIXTHREAD' });
    const f = path.join(out, 'kernel-entry');
    writeFileSync(f, extractImage(m, Number(filesetEntries(m)[0]!.fileoff)));
    const h = objdumpHeaders(f);
    expect(h.cmds).toContain('LC_UNIXTHREAD');
    expect(h.cmds).not.toContain('LC_MAIN');
    expect(h.out).toMatch(new RegExp(`pc 0x0*${(filesetEntries(m)[0]!.vmaddr + inK.entryoff!).toString(16)}`));
  });

  it('keeps LC_MAIN when the kernel header has no room for LC_UNIXTHREAD', () => {
    const k = parseMachO(buildFileset({ kernel: readFileSync(fx.kernelNoPad), kexts: [] }));
    const e = filesetEntries(k)[0]!;
    expect(entryPoint(openEntry(k, e))).toEqual({ vmaddr: e.vmaddr + objdumpHeaders(fx.kernelNoPad).entryoff!, source: 'LC_MAIN' });
  });

  it('lists versions from Info.plist and from kmod_info', () => {
    const rows = listKexts(m);
    expect(rows.map((r) => [r.id, r.version, r.versionSource])).toEqual([
      ['com.example.kexta', '1.4.2', 'prelink-info'],
      ['com.example.kextb', '2.0.1', 'kmod_info'],
    ]);
  });

  it('every chain walks and every pointer llvm-objdump reports as rebase or bind points to the right place', () => {
    const chains = parseChainedFixups(m)!;
    expect(chains.segments.every((s) => s.pointer_format === DYLD_CHAINED_PTR_64_KERNEL_CACHE && s.page_size === 16384)).toBe(true);
    const walked = walkChainedFixups(m, chains, DEFAULT_KC_BASE);
    const bySlot = new Map(walked.map((f) => [f.address, f]));
    // Where each input image went, and every symbol's new address (llvm-objdump's exports).
    const delta = new Map<string, bigint>();
    const symbols = new Map<string, bigint>();
    for (const e of filesetEntries(m)) {
      const input = parseMachO(new Uint8Array(readFileSync(inputs[e.id]!)));
      const d = e.vmaddr - findSegment(input, '__TEXT')!.vmaddr;
      delta.set(e.id, d);
      for (const [name, off] of objdumpExports(inputs[e.id]!)) {
        // llvm-objdump prints export addresses as the image's vmaddr (exe) or offset (bundle).
        const abs = off >= findSegment(input, '__TEXT')!.vmaddr ? off : off + findSegment(input, '__TEXT')!.vmaddr;
        if (!symbols.has(name)) symbols.set(name, abs + d);
      }
    }
    let checked = 0;
    for (const [id, file] of Object.entries(inputs)) {
      const input = new Uint8Array(readFileSync(file));
      const im = parseMachO(input);
      const d = delta.get(id)!;
      const binds = [...objdumpBinds(file, '--bind'), ...objdumpBinds(file, '--lazy-bind')];
      const bound = new Set(binds.map((b) => b.address));
      for (const r of objdumpRebases(file)) {
        if (bound.has(r)) continue;
        const seg = im.segments.find((s) => r >= s.vmaddr && r < s.vmaddr + s.filesize)!;
        const original = u64(input, Number(seg.fileoff + r - seg.vmaddr));
        const f = bySlot.get(r + d);
        expect(f, `rebase slot 0x${r.toString(16)} of ${id}`).toBeDefined();
        expect(f!.target).toBe(original + d);
        checked++;
      }
      for (const b of binds) {
        if (b.symbol === 'dyld_stub_binder') continue;
        const f = bySlot.get(b.address + d);
        expect(f, `bind slot 0x${b.address.toString(16)} (${b.symbol}) of ${id}`).toBeDefined();
        expect(f!.target, `${id} ${b.symbol}`).toBe(symbols.get(b.symbol));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(12);
    // Every walked entry targets something inside the collection.
    for (const f of walked) expect(f.target! < DEFAULT_KC_BASE + BigInt(kc.length)).toBe(true);
  });

  it('llvm-objdump accepts the top level (as MH_EXECUTE: LLVM 14 does not know MH_FILESET) and agrees on segments', () => {
    const copy = kc.slice();
    copy[12] = 2;
    const f = path.join(out, 'top.macho');
    writeFileSync(f, copy);
    const h = objdumpHeaders(f);
    expect(h.code).toBe(0);
    expect(h.err).toBe('');
    expect(h.segments.map((s) => [s.segname, s.vmaddr, s.fileoff, s.filesize])).toEqual(m.segments.map((s) => [s.segname, s.vmaddr, s.fileoff, s.filesize]));
    expect(h.uuid).toBe(uuidString(m));
  });

  it.skipIf(!objdump19Path())('llvm-objdump-19 reads the MH_FILESET as is, and its chained-fixup starts match ours', () => {
    const f = path.join(out, 'kc.macho');
    writeFileSync(f, kc);
    const l = objdump19Chained(f);
    const fx = parseChainedFixups(m)!;
    expect(l.header).toEqual({ ...fx.header });
    expect(l.segments.map((s) => [s.segIndex, s.page_size, s.pointer_format, s.segment_offset, s.pageStarts])).toEqual(
      fx.segments.map((s) => [s.segIndex, s.page_size, s.pointer_format, s.segment_offset, s.pageStarts.map((p) => (p.length ? p[0] : 0xffff))]));
    // segment_offset is each segment's distance from the collection's base.
    for (const s of l.segments) expect(s.segment_offset).toBe(m.segments[s.segIndex]!.vmaddr - DEFAULT_KC_BASE);
  });

  it('extracted entries are valid Mach-Os for llvm-objdump, with the input images\' symbols', () => {
    const slotted = collectionFixups(m);
    for (const e of filesetEntries(m)) {
      const bytes = extractImage(m, Number(e.fileoff), slotted);
      const f = path.join(out, e.id);
      writeFileSync(f, bytes);
      const h = objdumpHeaders(f);
      expect(h.code, `${e.id}: ${h.err}`).toBe(0);
      expect(h.err).toBe('');
      const x = parseMachO(bytes);
      expect(h.segments.map((s) => [s.segname, s.vmaddr, s.fileoff])).toEqual(x.segments.map((s) => [s.segname, s.vmaddr, s.fileoff]));
      // Every chain entry of the collection inside this image is now the plain address it targets.
      const walked = walkChainedFixups(m, parseChainedFixups(m), DEFAULT_KC_BASE);
      let resolved = 0;
      for (const f of walked) {
        const off = vmToFileOffset(x, f.address);
        if (off === undefined) continue;
        expect(u64(bytes, Number(off))).toBe(f.target);
        resolved++;
      }
      if (e.id !== 'com.apple.kernel') expect(resolved).toBeGreaterThan(3);
      // llvm-objdump reads those slots back as the image's rebase table: exactly the input's
      // rebased and bound pointers (dyld_stub_binder's GOT slot is never used and stays 0).
      const input = inputs[e.id]!;
      const d = e.vmaddr - findSegment(parseMachO(new Uint8Array(readFileSync(input))), '__TEXT')!.vmaddr;
      const binds = [...objdumpBinds(input, '--bind'), ...objdumpBinds(input, '--lazy-bind')].filter((b) => b.symbol !== 'dyld_stub_binder').map((b) => b.address);
      const expected = [...new Set([...objdumpRebases(input), ...binds])].filter((a) => !objdumpBinds(input, '--bind').some((b) => b.symbol === 'dyld_stub_binder' && b.address === a)).map((a) => a + d).sort((a, b) => (a < b ? -1 : 1));
      expect(objdumpRebases(f)).toEqual(expected);
      const before = [...objdumpExports(inputs[e.id]!).keys()].sort();
      expect([...objdumpExports(f).keys()].sort()).toEqual(before);
    }
  });

  it('names the kext and the symbol when an import cannot be resolved', () => {
    let err: unknown;
    try {
      buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kextb', macho: readFileSync(fx.kextb) }] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect(String((err as Error).message)).toMatch(/com\.example\.kextb.*_kexta_(fn|other)/);
  });

  it('refuses a kernel linked with -no_pie (no rebase information to move it by)', () => {
    expect(() => buildFileset({ kernel: readFileSync(fx.kernelNoPie), kexts: [] })).toThrow(/-no_pie/);
  });

  it('builds with 4 KiB pages and another base: same pointers, moved', () => {
    const base = 0xfffffff007004000n;
    const k4 = parseMachO(buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist }, { id: 'com.example.kextb', macho: readFileSync(fx.kextb) }], baseVmaddr: base, pageSize: 4096 }));
    const c4 = parseChainedFixups(k4)!;
    expect(c4.segments.every((s) => s.page_size === 4096)).toBe(true);
    const w16 = walkChainedFixups(m, parseChainedFixups(m), DEFAULT_KC_BASE);
    const w4 = walkChainedFixups(k4, c4, base);
    expect(w4.length).toBe(w16.length);
    // Same slots and targets relative to each image's entry address.
    const rel = (mm: MachO, w: typeof w4) => {
      const es = filesetEntries(mm);
      const owner = (a: bigint) => [...es].reverse().find((e) => a >= e.vmaddr)!;
      return w.map((f) => [owner(f.address).id, f.address - owner(f.address).vmaddr, owner(f.target!).id, f.target! - owner(f.target!).vmaddr]).sort();
    };
    expect(rel(k4, w4)).toEqual(rel(m, w16));
    expect(() => buildFileset({ kernel: readFileSync(fx.kernel), kexts: [], pageSize: 65536 })).toThrow(/pageSize/);
  });

  it('is deterministic', () => {
    const again = buildFileset({
      kernel: readFileSync(fx.kernel),
      kexts: [
        { id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist },
        { id: 'com.example.kextb', macho: readFileSync(fx.kextb) },
      ],
    });
    expect(Buffer.compare(again, kc)).toBe(0);
  });
});
