import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { FormatError } from '../../src/errors.js';
import { parseMachO, serializeMachO } from '../../src/macho/macho.js';
import { parseFat } from '../../src/macho/fat.js';
import { parseChainedFixups, walkChainedFixups } from '../../src/macho/fixups.js';
import { parseExportsTrie } from '../../src/macho/exports-trie.js';
import { parseSymtab } from '../../src/macho/symtab.js';
import { setU32 } from '../../src/macho/macho-bytes.js';

// Hand-made damage to real files: each must end in one FormatError that names the structure and
// the offset, never a hang, a RangeError or an allocation the size of a lie.

const hello = () => new Uint8Array(readFileSync(path.join(corpus, 'macho/hello-macos-arm64-chained')));

function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    expect((e as FormatError).oneLine()).not.toMatch(/\n/);
    return e as FormatError;
  }
  throw new Error('expected a FormatError, got none');
}

/** Offset of the first load command with this cmd. */
function findCmd(b: Uint8Array, cmd: number): number {
  const dv = new DataView(b.buffer, b.byteOffset);
  let off = 32;
  for (let i = 0; i < dv.getUint32(16, true); i++) {
    if (dv.getUint32(off, true) === cmd) return off;
    off += dv.getUint32(off + 4, true);
  }
  throw new Error(`no command 0x${cmd.toString(16)}`);
}

describe('Mach-O bad input', () => {
  it('truncated header', () => {
    const e = formatError(() => parseMachO(hello().subarray(0, 20)));
    expect(e.structure).toBe('mach_header_64');
  });

  it('sizeofcmds beyond the file', () => {
    const b = hello();
    setU32(b, 20, 0x7fffffff);
    const e = formatError(() => parseMachO(b));
    expect(e.offset).toBe(20n);
  });

  it('ncmds that cannot fit', () => {
    const b = hello();
    setU32(b, 16, 50000);
    expect(formatError(() => parseMachO(b)).detail).toMatch(/ncmds/);
  });

  it('cmdsize 0 (would loop forever) and cmdsize not a multiple of 8', () => {
    for (const bad of [0, 12]) {
      const b = hello();
      setU32(b, 32 + 72 + 4, bad); // the second command
      const e = formatError(() => parseMachO(b));
      expect(e.detail).toMatch(/cmdsize/);
      expect(e.offset).toBe(BigInt(32 + 72));
    }
  });

  it('overlapping segments', () => {
    const b = hello();
    const m = parseMachO(b);
    const data = m.commands.filter((c) => c.kind === 'segment_64')[2]!;
    // Move the third segment's file range onto the second.
    new DataView(b.buffer).setBigUint64(data.offset + 40, m.segments[1]!.fileoff, true);
    expect(formatError(() => parseMachO(b)).detail).toMatch(/overlaps/);
  });

  it('symbol table beyond the file (absurd nsyms)', () => {
    const b = hello();
    setU32(b, findCmd(b, 0x2) + 12, 0x10000000);
    expect(formatError(() => parseMachO(b)).structure).toBe('LC_SYMTAB symbols');
  });

  it('symbol name without a NUL', () => {
    const b = hello();
    const m = parseMachO(b);
    const st = m.commands.find((c) => c.kind === 'symtab')!;
    if (st.kind !== 'symtab') throw new Error();
    b.fill(0x41, st.stroff, st.stroff + st.strsize);
    expect(formatError(() => parseSymtab(parseMachO(b))).detail).toMatch(/NUL/);
  });

  it('a fixup chain that runs off its page', () => {
    const b = hello();
    const m = parseMachO(b);
    const fx = parseChainedFixups(m)!;
    const first = walkChainedFixups(m, fx)[0]!;
    // next (bits 51..62 in DYLD_CHAINED_PTR_64_OFFSET) = 4095: 16 KiB past the slot.
    const v = new DataView(b.buffer).getBigUint64(first.fileOffset, true);
    new DataView(b.buffer).setBigUint64(first.fileOffset, (v & ~(0xfffn << 51n)) | (4095n << 51n), true);
    const m2 = parseMachO(b);
    expect(formatError(() => walkChainedFixups(m2, parseChainedFixups(m2))).structure).toBe('fixup chain');
  });

  it('chained fixups with an absurd seg_count or page_count', () => {
    const b = hello();
    const m = parseMachO(b);
    const fx = parseChainedFixups(m)!;
    setU32(b, fx.dataoff + fx.header.starts_offset, 1000);
    expect(formatError(() => parseChainedFixups(parseMachO(b))).detail).toMatch(/seg_count/);
  });

  it('an exports trie that loops', () => {
    // Root: no terminal, one child "a" whose node offset points back at the root.
    const trie = new Uint8Array([0, 1, 0x61, 0, 0]);
    expect(formatError(() => parseExportsTrie(trie, 0, trie.length)).detail).toMatch(/twice|loops/);
  });

  it('a fat header with absurd counts or slices outside the file', () => {
    const fat = new Uint8Array(readFileSync(path.join(corpus, 'macho/ls-m1')));
    const b = fat.slice();
    new DataView(b.buffer).setUint32(4, 1000);
    expect(formatError(() => parseFat(b)).detail).toMatch(/absurd/);
    const c = fat.slice();
    new DataView(c.buffer).setUint32(8 + 12, 0x7fffffff); // first slice's size
    expect(formatError(() => parseFat(c)).detail).toMatch(/outside the file/);
  });

  it('the two fuzzed corpus files', () => {
    const a = formatError(() => parseMachO(new Uint8Array(readFileSync(path.join(corpus, 'macho/fuzzed/nullpointerdereference-fileset')))));
    expect(a.structure).toBe('mach_header_64');
    const k = formatError(() => parseMachO(new Uint8Array(readFileSync(path.join(corpus, 'macho/fuzzed/xnu-kernelcache-oobread')))));
    expect(k.detail).toMatch(/past the end of the file/);
  });

  it('the serializer refuses commands that would overwrite section data', () => {
    const m = parseMachO(hello());
    const lc = m.commands[m.commands.length - 1]!;
    m.commands.push({ ...lc, raw: new Uint8Array(1 << 16), cmdsize: 1 << 16, cmd: 0x7777, kind: 'unknown' } as typeof lc);
    expect(formatError(() => serializeMachO(m)).detail).toMatch(/overwrite/);
  });
});
