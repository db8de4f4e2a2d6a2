import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { tool } from '../../src/host/tools.js';
import { parseFat, fatSlice, isFat } from '../../src/macho/fat.js';
import { openMachO, writeBack } from '../../src/macho/macho-open.js';
import { objdump } from '../fixtures/kc/llvm.js';

// Fat files: fat_arch records against llvm-objdump --universal-headers, for the corpus's
// FAT_MAGIC files and for a FAT_MAGIC_64 file made from their slices.

function llvmUniversal(file: string): { arch: string; offset: bigint; size: bigint; align: number }[] {
  const out = objdump(['--universal-headers', file]).out;
  const rows: { arch: string; offset: bigint; size: bigint; align: number }[] = [];
  for (const l of out.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^architecture (\S+)/.exec(l))) rows.push({ arch: m[1]!, offset: 0n, size: 0n, align: 0 });
    else if ((m = /^\s+offset (\d+)/.exec(l))) rows[rows.length - 1]!.offset = BigInt(m[1]!);
    else if ((m = /^\s+size (\d+)/.exec(l))) rows[rows.length - 1]!.size = BigInt(m[1]!);
    else if ((m = /^\s+align 2\^(\d+)/.exec(l))) rows[rows.length - 1]!.align = Number(m[1]);
  }
  return rows;
}

/** A FAT_MAGIC_64 file holding the given slices (mach-o/fat.h: fat_arch_64, big-endian). */
function fat64(slices: { cputype: number; cpusubtype: number; bytes: Uint8Array }[]): Uint8Array {
  const align = 14;
  let off = 1 << align;
  const placed = slices.map((s) => { const at = off; off = Math.ceil((at + s.bytes.length) / (1 << align)) * (1 << align); return at; });
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0xcafebabf);
  dv.setUint32(4, slices.length);
  slices.forEach((s, i) => {
    const o = 8 + i * 32;
    dv.setUint32(o, s.cputype);
    dv.setUint32(o + 4, s.cpusubtype);
    dv.setBigUint64(o + 8, BigInt(placed[i]!));
    dv.setBigUint64(o + 16, BigInt(s.bytes.length));
    dv.setUint32(o + 24, align);
    out.set(s.bytes, placed[i]!);
  });
  return out;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'm1prep-fat-'));

describe('fat files', () => {
  it.skipIf(!tool('llvm-objdump'))('corpus FAT_MAGIC files agree with llvm-objdump --universal-headers', () => {
    for (const f of ['macho/ls-sequoia', 'macho/ls-m1', 'macho/cat-macos-arm64']) {
      const file = path.join(corpus, f);
      const fat = parseFat(new Uint8Array(readFileSync(file)));
      expect(fat.arches.map((a) => ({ arch: a.arch, offset: a.offset, size: a.size, align: a.align }))).toEqual(llvmUniversal(file));
    }
  });

  it.skipIf(!tool('llvm-objdump'))('FAT_MAGIC_64 (fat_arch_64) parses, opens each slice, agrees with llvm-objdump, writes back unchanged', () => {
    const src = new Uint8Array(readFileSync(path.join(corpus, 'macho/ls-sequoia')));
    const f32 = parseFat(src);
    const b = fat64(f32.arches.map((a) => ({ cputype: a.cputype, cpusubtype: a.cpusubtype, bytes: fatSlice(src, a) })));
    const file = path.join(tmp, 'ls.fat64');
    writeFileSync(file, b);
    expect(isFat(b)).toBe(true);
    const f = parseFat(b);
    expect(f.arches.map((a) => ({ arch: a.arch, offset: a.offset, size: a.size, align: a.align }))).toEqual(llvmUniversal(file));
    for (const a of f.arches) {
      expect(Buffer.compare(fatSlice(b, a), fatSlice(src, f32.arches.find((x) => x.arch === a.arch)!))).toBe(0);
      const o = openMachO(b, { arch: a.arch });
      expect(o.macho!.header.cputype).toBe(a.cputype);
      expect(Buffer.compare(writeBack(o), b)).toBe(0);
      // An edit lands in its slice only: the other slice and the fat header are untouched.
      o.macho!.header.reserved = 0xabcd;
      const edited = writeBack(o);
      const diff = [...edited].flatMap((x, i) => (x !== b[i] ? [i] : []));
      expect(diff.length).toBeGreaterThan(0);
      for (const i of diff) expect(i >= Number(a.offset) + 28 && i < Number(a.offset) + 32).toBe(true);
    }
  });
});
