import type { BenchResult } from './run.js';
import { peakRssMiB, timeBest } from './measure.js';
import { assemble, materialize } from '../src/patches/arm64-asm.js';
import { applyOutcomes, planPatches } from '../src/patches/engine.js';
import type { Patch } from '../src/patches/patch-set.js';
import { compileWord } from '../src/patches/arm64-pattern.js';
import { openCollection } from '../src/patches/target.js';

// 200 patches over a 100 MiB kernel (raw Mach-O: "beyond decompression"): 150 instruction
// patterns, 30 string cross-references to function starts, 20 masked byte patterns, each
// expected exactly once. The code is a synthetic mix of common A64 encodings (loads, stores,
// ALU, branches, calls, ADRP pairs) so the top-byte table sees a realistic spread. Baseline, same
// run: one Buffer.indexOf pass over the same 100 MiB for a needle that is not there.

const CODE_MIB = 100;
const TEXT_VM = 0xfffffe0007010000n;
const FILL = [
  'ldr x8, [x19, #0x10]', 'str w9, [sp, #0x2c]', 'add x0, x20, #0x18', 'mov x1, x21', 'bl #0x1234', 'cmp w8, #3', 'b.ne #0x40',
  'cbz x0, #0x20', 'stp x20, x19, [sp, #0x10]', 'ldp x29, x30, [sp, #0x20]', 'adrp x8, #0x10000', 'ldr x8, [x8, #0x128]',
  'mov w0, #0', 'tbnz w8, #2, #0x30', 'sub x9, x9, #1', 'b #-0x80', 'blr x8', 'nop',
];

function u32le(b: Uint8Array, o: number, v: number): void {
  new DataView(b.buffer, b.byteOffset).setUint32(o, v, true);
}

interface Built {
  bytes: Uint8Array;
  patches: Patch[];
}

function patch(id: string, matchers: Patch['matchers'], action: Patch['action']): Patch {
  return {
    id, set: 'bench', source: 'bench', reason: 'benchmark patch', verified: 'samples-only', target: 'com.apple.kernel',
    limit: 0, when: {}, required: true, matchers, expect: { op: 'exactly', n: 1 }, skip: 0, count: 0, action,
  };
}

function build(): Built {
  const codeSize = CODE_MIB * 1024 * 1024;
  const strSize = 64 * 1024;
  const headerSize = 0x4000;
  const file = new Uint8Array(headerSize + codeSize + strSize);
  // mach_header_64 + two LC_SEGMENT_64 with one section each (mach-o/loader.h).
  u32le(file, 0, 0xfeedfacf); u32le(file, 4, 0x0100000c); u32le(file, 12, 2); u32le(file, 16, 2); u32le(file, 20, 2 * (72 + 80));
  const seg = (at: number, name: string, sect: string, vm: bigint, off: number, size: number, prot: number, flags: number) => {
    const dv = new DataView(file.buffer);
    dv.setUint32(at, 0x19, true); dv.setUint32(at + 4, 72 + 80, true);
    file.set(new TextEncoder().encode(name), at + 8);
    dv.setBigUint64(at + 24, vm, true); dv.setBigUint64(at + 32, BigInt(size), true);
    dv.setBigUint64(at + 40, BigInt(off), true); dv.setBigUint64(at + 48, BigInt(size), true);
    dv.setUint32(at + 56, prot, true); dv.setUint32(at + 60, prot, true); dv.setUint32(at + 64, 1, true);
    const s = at + 72;
    file.set(new TextEncoder().encode(sect), s); file.set(new TextEncoder().encode(name), s + 16);
    dv.setBigUint64(s + 32, vm, true); dv.setBigUint64(s + 40, BigInt(size), true); dv.setUint32(s + 48, off, true);
    dv.setUint32(s + 64, flags, true);
  };
  const strVm = TEXT_VM + BigInt(codeSize);
  seg(32, '__TEXT_EXEC', '__text', TEXT_VM, headerSize, codeSize, 5, 0x80000400);
  seg(32 + 152, '__TEXT', '__cstring', strVm, headerSize + codeSize, strSize, 1, 2);
  const fill = FILL.map((t) => assemble(t));
  let x = 12345;
  for (let o = headerSize; o < headerSize + codeSize; o += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    u32le(file, o, fill[x % fill.length]!);
  }
  file.set(new TextEncoder().encode('Darwin Kernel Version 21.4.0: bench\0'), headerSize + codeSize);

  const patches: Patch[] = [];
  const slot = (i: number, n: number) => headerSize + Math.floor(((i + 0.5) / n) * (codeSize / 4 - 64)) * 4;
  // 150 instruction patterns: movz/movk of a unique constant, a call, a test.
  for (let i = 0; i < 150; i++) {
    const at = slot(i, 150);
    const k = 0x1000 + i;
    const words = [...materialize('x9', BigInt(k) << 16n | 0x77n), assemble('bl #0x400'), assemble('cbnz w0, #0x20')];
    words.forEach((w, j) => u32le(file, at + j * 4, w));
    const pattern = ['mov x?, #0x77', `movk x9, #${k}, lsl #16`, 'bl *', 'cbnz w0, *'].map(compileWord);
    patches.push(patch(`insn-${i}`, [{ kind: 'instructions', words: pattern, offset: 12, action: { kind: 'nop', count: 1 } }], { kind: 'nop', count: 1 }));
  }
  // 30 string xrefs: a prologue, then ADRP + ADD of a unique string, inside the code.
  let strAt = headerSize + codeSize + 64;
  for (let i = 0; i < 30; i++) {
    const text = `bench guard ${i}: unsupported configuration`;
    file.set(new TextEncoder().encode(text + '\0'), strAt);
    const strAddr = strVm + BigInt(strAt - headerSize - codeSize);
    strAt += text.length + 1;
    const at = slot(i, 30) + 64;
    const pc = TEXT_VM + BigInt(at - headerSize);
    const fn = [assemble('pacibsp'), assemble('stp x29, x30, [sp, #-0x10]!'), assemble('mov x29, sp'), assemble(`adrp x0, ${strAddr}`, pc + 12n), assemble(`add x0, x0, #${Number(strAddr & 0xfffn)}`)];
    fn.forEach((w, j) => u32le(file, at + j * 4, w));
    const action = { kind: 'return' as const, value: 0n, width: 32 as const };
    patches.push(patch(`xref-${i}`, [{ kind: 'string', text, partial: false, at: 'function', offset: 0, action }], action));
  }
  // 20 masked byte patterns (12 bytes, a few bits free, as OpenCore-style Find/Mask patches are).
  for (let i = 0; i < 20; i++) {
    const at = slot(i, 20) + 128;
    const find = new Uint8Array([0xde, 0xc0, 0xad, 0x0b, i, 0x5a, 0xa5, 0x3c, 0x11, 0x22, 0x33, 0x44]);
    file.set(find, at);
    const mask = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0xff]);
    const action = { kind: 'replace' as const, bytes: new Uint8Array([0, 0, 0, 0]), mask: null };
    patches.push(patch(`bytes-${i}`, [{ kind: 'bytes', find, mask, offset: 0, action }], action));
  }
  return { bytes: file, patches };
}

export default async function (): Promise<BenchResult[]> {
  const { bytes, patches } = build();
  const c = openCollection(bytes);
  let applied = 0;
  const ours = await timeBest(() => {
    const outcomes = planPatches(c, patches);
    applied = outcomes.filter((o) => o.status === 'applied').length;
    applyOutcomes(bytes, outcomes);
  }, 3);
  if (applied !== patches.length) throw new Error(`bench: only ${applied} of ${patches.length} patches applied`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1]);
  const base = await timeBest(() => buf.indexOf(needle), 3);
  return [{
    name: `patch: ${patches.length} patches over ${CODE_MIB} MiB`,
    value: `${ours.toFixed(3)} s`,
    baseline: `1 Buffer.indexOf pass ${base.toFixed(3)} s`,
    ratio: ours / base,
    peakRssMiB: peakRssMiB(),
    note: `(time / one memmem pass; ${(ours / patches.length * 1000).toFixed(2)} ms per patch; includes the patched copy)`,
  }];
}
