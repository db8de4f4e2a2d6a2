import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { tool } from '../../src/host/tools.js';
import { parseMachO, serializeMachO, uuidString, entryPoint, commandOf, type MachO } from '../../src/macho/macho.js';
import { isFat, parseFat, fatSlice } from '../../src/macho/fat.js';
import { loadCommandName } from '../../src/macho/load-commands.js';
import { headerFlagNames } from '../../src/macho/macho-constants.js';
import { parseSymtab } from '../../src/macho/symtab.js';
import { decodeBinds, decodeRebases, ordinalName } from '../../src/macho/dyld-info.js';
import { exportsOf } from '../../src/macho/exports-trie.js';
import { parseChainedFixups, walkChainedFixups, DYLD_CHAINED_PTR_64, DYLD_CHAINED_PTR_64_OFFSET } from '../../src/macho/fixups.js';
import { parseCodeSignature } from '../../src/macho/codesign.js';
import { headerVmaddr } from '../../src/macho/macho.js';
import { walkThreadedFixups } from '../../src/macho/fixups-threaded.js';
import { nmNames, objdump, objdump19Chained, objdump19DyldInfo, objdump19Exports, objdump19Path, objdumpBinds, objdumpHeaders, objdumpRebases } from '../fixtures/kc/llvm.js';

// Every Mach-O in the shared corpus (each fat slice too) against Debian's LLVM: load commands,
// segments, UUID, entry, symbols, dyld-info fixups, exports, chained-fixup starts and imports, and
// the fixup targets LLVM 19 decodes. Plus serialize(parse(x)) == x for every image.

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) { if (n !== 'fuzzed') walk(p); continue; }
      if (n.endsWith('.plist')) continue;
      out.push(p);
    }
  };
  walk(path.join(corpus, 'macho'));
  walk(path.join(corpus, 'kernel/dyld-kc-tests'));
  return out.sort();
}

interface Case { name: string; file: string; arch?: string; bytes: Uint8Array; m: MachO }

function cases(): Case[] {
  const out: Case[] = [];
  for (const file of corpusFiles()) {
    const bytes = new Uint8Array(readFileSync(file));
    const name = path.relative(corpus, file);
    if (isFat(bytes)) {
      for (const a of parseFat(bytes).arches) {
        const slice = fatSlice(bytes, a);
        out.push({ name: `${name} [${a.arch}]`, file, arch: a.arch, bytes: slice, m: parseMachO(slice) });
      }
    } else {
      out.push({ name, file, bytes, m: parseMachO(bytes) });
    }
  }
  return out;
}

const all = cases();
const haveObjdump = tool('llvm-objdump') !== null;
const have19 = objdump19Path() !== null;
if (!haveObjdump) console.warn('llvm-objdump not installed: LLVM oracle comparisons skipped');
if (!have19) console.warn('llvm-objdump-19 not installed (apt llvm-19): chained-fixup oracle comparisons skipped');

const archArgs = (c: Case) => (c.arch ? [`--arch=${c.arch}`] : []);

describe('Mach-O corpus', () => {
  it('has the expected images (fat slices included)', () => {
    expect(all.length).toBeGreaterThanOrEqual(20);
  });

  it.each(all.map((c) => [c.name, c] as const))('%s: serialize(parse(x)) == x', (_n, c) => {
    expect(Buffer.compare(serializeMachO(c.m), c.bytes)).toBe(0);
  });

  it.skipIf(!haveObjdump).each(all.map((c) => [c.name, c] as const))('%s: load commands, segments, uuid, entry agree with llvm-objdump', (_n, c) => {
    const h = objdumpHeaders(c.file, archArgs(c));
    expect(h.code).toBe(0);
    const ours = c.m.commands.map((lc) => loadCommandName(lc.cmd));
    expect(h.cmds.length).toBe(ours.length);
    h.cmds.forEach((name, i) => {
      // LLVM 14 prints ?(0x...) for commands it does not know; compare those by number.
      if (name.startsWith('?')) expect(name).toBe(`?(0x${c.m.commands[i]!.cmd.toString(16)})`);
      else expect(name).toBe(ours[i]);
    });
    expect(h.segments.map((s) => [s.segname, s.vmaddr, s.vmsize, s.fileoff, s.filesize])).toEqual(c.m.segments.map((s) => [s.segname, s.vmaddr, s.vmsize, s.fileoff, s.filesize]));
    expect(h.uuid).toBe(uuidString(c.m));
    // The header line: llvm-objdump prints the flag names without the MH_ prefix.
    const hdr = h.out.split('\n').find((l) => l.startsWith('MH_MAGIC_64'))!;
    const flags = hdr.trim().split(/\s+/).slice(7);
    expect(headerFlagNames(c.m.header.flags).map((f) => f.replace(/^MH_/, ''))).toEqual(flags.filter((f) => f !== '0x00'));
    const main = commandOf(c.m, 'entry_point');
    if (main) expect(h.entryoff).toBe(main.entryoff);
    const pc = /\bpc 0x([0-9a-f]+)/.exec(h.out);
    if (pc) expect(entryPoint(c.m)!.vmaddr).toBe(BigInt('0x' + pc[1]));
  });

  it.skipIf(!haveObjdump).each(all.map((c) => [c.name, c] as const))('%s: symbol names agree with llvm-nm', (_n, c) => {
    const names = parseSymtab(c.m).map((s) => s.name);
    expect(names).toEqual(nmNames(c.file, archArgs(c)));
  });

  const dyldInfoCases = all.filter((c) => commandOf(c.m, 'dyld_info'));
  it('covers LC_DYLD_INFO images', () => expect(dyldInfoCases.length).toBeGreaterThanOrEqual(4));

  it.skipIf(!haveObjdump).each(dyldInfoCases.map((c) => [c.name, c] as const))('%s: rebase/bind/lazy-bind opcodes agree with llvm-objdump', (_n, c) => {
    expect(decodeRebases(c.m).map((r) => r.address)).toEqual(objdumpRebases(c.file, archArgs(c)));
    expect(decodeBinds(c.m, 'lazy_bind').map((b) => ({ address: b.address, symbol: b.symbol }))).toEqual(objdumpBinds(c.file, '--lazy-bind', archArgs(c)));
    const threaded = walkThreadedFixups(c.m);
    if (!threaded) {
      expect(decodeBinds(c.m, 'bind').map((b) => ({ address: b.address, symbol: b.symbol }))).toEqual(objdumpBinds(c.file, '--bind', archArgs(c)));
      for (const b of decodeBinds(c.m, 'bind')) expect(ordinalName(c.m, b.ordinal)).not.toMatch(/^ordinal/);
      return;
    }
    // LLVM 14 rejects BIND_OPCODE_THREADED ("bad opcode value 0xd0"): check the chains against the
    // symbol table instead: every table entry is an undefined symbol, every rebase lands in the image.
    expect(objdump(['--bind', ...archArgs(c), c.file]).err).toMatch(/0xd0/);
    const undef = new Set(parseSymtab(c.m).filter((s) => (s.n_type & 0x0e) === 0 && (s.n_type & 0xe0) === 0).map((s) => s.name));
    for (const e of threaded.table) expect(undef.has(e.symbol), e.symbol).toBe(true);
    expect(threaded.fixups.filter((f) => f.kind === 'bind').length).toBeGreaterThanOrEqual(threaded.table.length);
    for (const f of threaded.fixups) {
      if (f.kind === 'rebase') expect(c.m.segments.some((s) => f.target! >= s.vmaddr && f.target! <= s.vmaddr + s.vmsize)).toBe(true);
    }
  });

  it.skipIf(!have19).each(all.map((c) => [c.name, c] as const))('%s: exports trie agrees with llvm-objdump-19', (_n, c) => {
    const llvm = objdump19Exports(c.file, archArgs(c));
    const base = headerVmaddr(c.m) ?? 0n;
    const ours = new Map(exportsOf(c.m).filter((e) => e.address !== undefined).map((e) => [e.name, e.address!]));
    expect([...ours.keys()].sort()).toEqual([...llvm.keys()].sort());
    for (const [name, addr] of llvm) expect(addr === ours.get(name)! || addr === ours.get(name)! + base, name).toBe(true);
  });

  const chainedCases = all.filter((c) => parseChainedFixups(c.m));
  it('covers chained-fixup pointer formats 1, 6, 7 and 12', () => {
    const formats = new Set(chainedCases.flatMap((c) => parseChainedFixups(c.m)!.segments.map((s) => s.pointer_format)));
    for (const f of [1, 6, 7, 12]) expect(formats.has(f)).toBe(true);
  });

  it.skipIf(!have19).each(chainedCases.map((c) => [c.name, c] as const))('%s: chained fixups header, starts and imports agree with llvm-objdump-19', (_n, c) => {
    const fx = parseChainedFixups(c.m)!;
    const l = objdump19Chained(c.file, archArgs(c));
    expect(l.header).toEqual({ ...fx.header });
    expect(l.segments.map((s) => [s.segIndex, s.page_size, s.pointer_format, s.segment_offset, s.page_count])).toEqual(fx.segments.map((s) => [s.segIndex, s.page_size, s.pointer_format, s.segment_offset, s.page_count]));
    l.segments.forEach((s, i) => s.pageStarts.forEach((p, k) => {
      const ours = fx.segments[i]!.pageStarts[k]!;
      if (p === 0xffff) expect(ours).toEqual([]);
      else if (p < 0x8000) expect(ours).toEqual([p]);
      else expect(ours.length).toBeGreaterThan(0);
    }));
    expect(l.imports).toEqual(fx.imports.map((i) => ({ lib_ordinal: i.lib_ordinal, weak_import: i.weak_import, name: i.name })));
  });

  it.each(chainedCases.map((c) => [c.name, c] as const))('%s: every chain walks, rebases land in segments, binds name an import', (_n, c) => {
    const fx = parseChainedFixups(c.m)!;
    const walked = walkChainedFixups(c.m, fx);
    expect(walked.length).toBeGreaterThan(0);
    const inImage = (a: bigint) => c.m.segments.some((s) => a >= s.vmaddr && a <= s.vmaddr + s.vmsize);
    for (const f of walked) {
      if (f.kind === 'rebase') expect(inImage(f.target!) || inImage(f.target! & 0x00ffffffffffffffn), `${c.name} 0x${f.address.toString(16)} -> 0x${f.target!.toString(16)}`).toBe(true);
      else expect(fx.imports[f.ordinal!]!.name.length).toBeGreaterThan(0);
    }
    // Every import is an undefined symbol of the image (LLVM's view of what it needs).
    const undef = new Set(parseSymtab(c.m).filter((s) => (s.n_type & 0x0e) === 0 && (s.n_type & 0xe0) === 0).map((s) => s.name));
    for (const i of fx.imports) expect(undef.has(i.name), i.name).toBe(true);
  });

  // LLVM 19 mislocates the slots of Apple's kernel-collection test inputs (it reports a __DATA
  // slot in __TEXT_EXEC, and crashes in sectionName() on the kext-bind-to-kext kexts), so its
  // --dyld-info is the oracle for the userland images only.
  const decodable = chainedCases.filter((c) => c.name.startsWith('macho/') && parseChainedFixups(c.m)!.segments.every((s) => s.pointer_format === DYLD_CHAINED_PTR_64 || s.pointer_format === DYLD_CHAINED_PTR_64_OFFSET));
  it('covers images whose fixups LLVM 19 decodes (64 / 64_OFFSET)', () => expect(decodable.length).toBeGreaterThanOrEqual(2));

  it.skipIf(!have19).each(decodable.map((c) => [c.name, c] as const))('%s: every fixup (slot, rebase target, bind symbol) agrees with llvm-objdump-19 --dyld-info', (_n, c) => {
    const fx = parseChainedFixups(c.m)!;
    const ours = walkChainedFixups(c.m, fx).map((f) => (f.kind === 'rebase'
      ? { address: f.address, kind: 'rebase', target: f.target }
      : { address: f.address, kind: 'bind', addend: f.addend! + fx.imports[f.ordinal!]!.addend, symbol: fx.imports[f.ordinal!]!.name }));
    const l = objdump19DyldInfo(c.file, archArgs(c));
    expect(l.code).toBe(0);
    const sort = <T extends { address: bigint }>(a: T[]) => [...a].sort((x, y) => (x.address < y.address ? -1 : 1));
    expect(sort(ours)).toEqual(sort(l.rows));
  });

  it.skipIf(!haveObjdump).each(all.filter((c) => parseCodeSignature(c.m)).map((c) => [c.name, c] as const))('%s: code signature superblob', (_n, c) => {
    const cs = parseCodeSignature(c.m)!;
    expect(cs.blobs[0]!.slot).toBe('CSSLOT_CODEDIRECTORY');
    expect(cs.codeDirectory!.identifier.length).toBeGreaterThan(0);
    // One hash per page up to codeLimit, which lies inside the file.
    expect(cs.codeDirectory!.codeLimit).toBeLessThanOrEqual(c.bytes.length);
    expect(cs.codeDirectory!.nCodeSlots).toBe(Math.ceil(cs.codeDirectory!.codeLimit / cs.codeDirectory!.pageSize));
  });
});
