import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAdt } from '../../../src/dtb/adt.js';
import { FormatError, M1prepError } from '../../../src/errors.js';
import { adtMemoryMap, findAdt } from '../../../src/dtb/adt-views.js';
import { deriveAdt } from '../../../src/dtb/derive-adt.js';
import { defaultLayoutPath, loadLayout, selectCpus } from '../../../src/dtb/layout.js';
import { serializeAdt } from '../../../src/dtb/adt.js';
import { tool } from '../../../src/host/tools.js';
import { parseMachO } from '../../../src/macho/macho.js';
import { buildSample } from '../../../src/samples/build.js';
import { buildSampleBaseAdt } from '../../../src/samples/base-adt.js';
import { loadFlavours } from '../../../src/samples/flavours.js';
import { planXnuBoot, loadXnuPlan, type XnuBootPlan } from '../../../src/vmm/boot/xnu.js';
import { BOOT_ARGS_LAYOUTS, bootArgsLayoutFor, readBootArgs, writeBootArgs, type BootArgsValues } from '../../../src/vmm/boot/xnu-boot-args.js';
import { repoRoot } from '../../helpers/cli.js';
import { tryLoadUnicorn } from '../../../src/vmm/cpu/unicorn/ffi.js';
import { bootGuest } from '../../../src/vmm/session.js';

// The XNU boot protocol: plan a boot of the sample collection, copy it into a RAM image the way the
// machine does, and read everything back from that RAM with independent means (raw offsets from
// XNU's boot.h, the ADT parser, llvm-objdump's view of the kernel).

const layoutAll = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));
const baseAdt = parseAdt(buildSampleBaseAdt(path.join(repoRoot, 'samples/devicetree/t8103-sample.yaml')));

describe('boot_args layouts (pexpert/pexpert/arm64/boot.h)', () => {
  const values: BootArgsValues = {
    Revision: 2, Version: 2, virtBase: 0xfffffe0007004000n, physBase: 0x800000000n, memSize: 0x40000000n, topOfKernelData: 0x814104000n,
    videoBaseAddr: 0n, videoDisplay: 0n, videoRowBytes: 0n, videoWidth: 0n, videoHeight: 0n, videoDepth: 0n, machineType: 0,
    deviceTreeP: 0xfffffe001b004000n, deviceTreeLength: 0x1234, CommandLine: 'debug=0x8 -v', bootFlags: 0x55n, memSizeActual: 0x40000000n,
  };
  it.each([
    ['21.4.0', 608, 0x2d0, 0x2e0],
    ['22.6.0', 608, 0x2d0, 0x2e0],
    ['20.6.0', 608, 0x2d0, 0x2e0],
    ['23.4.0', 1024, 0x470, 0x480],
    ['24.1.0', 1024, 0x470, 0x480],
  ])('Darwin %s: %i-byte command line, bootFlags at %i, %i bytes', (darwin, line, flagsAt, size) => {
    const l = bootArgsLayoutFor(darwin);
    expect(l.bootLineLength).toBe(line);
    expect(l.size).toBe(size);
    const bytes = writeBootArgs(l, values);
    const dv = new DataView(bytes.buffer);
    expect(dv.getBigUint64(flagsAt, true)).toBe(0x55n);
    expect(dv.getBigUint64(flagsAt + 8, true)).toBe(0x40000000n);
    expect(dv.getBigUint64(0x60, true)).toBe(values.deviceTreeP);
    expect(new TextDecoder().decode(bytes.subarray(0x6c, 0x6c + 12))).toBe('debug=0x8 -v');
    expect(readBootArgs(l, bytes)).toEqual(values);
  });
  it('refuses Darwin versions before macOS 11 and command lines that do not fit', () => {
    expect(() => bootArgsLayoutFor('19.6.0')).toThrow(/no boot_args layout/);
    expect(() => bootArgsLayoutFor('garbage')).toThrow(/not X.Y.Z/);
    expect(() => writeBootArgs(BOOT_ARGS_LAYOUTS[0]!, { ...values, CommandLine: 'x'.repeat(608) })).toThrow(/holds 607/);
  });
});

const haveToolchain = Boolean(tool('clang') && tool('ld64.lld'));

describe.skipIf(!haveToolchain)('planXnuBoot on the sample collection (skipped without clang / ld64.lld)', { timeout: 120_000 }, () => {
  let dir: string;
  const built: Record<string, { kc: Uint8Array; kernel: string }> = {};
  const ramdisk = new Uint8Array(3 * 16384 + 123).map((_, i) => (i * 7) & 0xff);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-xnu-'));
    for (const f of loadFlavours(path.join(repoRoot, 'samples/flavours.yaml')).filter((x) => x.profile === '12.3' || x.profile === '14.x')) {
      const b = await buildSample(f, { sampleRoot: path.join(repoRoot, 'samples'), outRoot: dir });
      built[f.darwin] = { kc: new Uint8Array(readFileSync(b.collection)), kernel: path.join(b.dir, 'kernel') };
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function boot(darwin: string, cpus: number): { plan: XnuBootPlan; ram: Uint8Array; layout: typeof layoutAll } {
    const layout = selectCpus(layoutAll, cpus);
    const adt = serializeAdt(deriveAdt(baseAdt, layout));
    const plan = planXnuBoot({ kernel: built[darwin]!.kc, adt, ramdisk, bootArgs: 'rd=md0 -v', darwin, layout });
    const ram = new Uint8Array(Number(layout.ram.size));
    loadXnuPlan({ load: (addr, data) => ram.set(data, Number(addr - layout.ram.base)) }, plan);
    return { plan, ram, layout };
  }

  for (const [darwin, line, flagsAt] of [['21.4.0', 608, 0x2d0], ['23.4.0', 1024, 0x470]] as const) {
    it(`Darwin ${darwin}: segments, entry, boot_args (${line}-byte line) and ADT read back from RAM`, () => {
      const { plan, ram, layout } = boot(darwin, 4);
      const at = (pa: bigint, n: number) => ram.subarray(Number(pa - layout.ram.base), Number(pa - layout.ram.base) + n);
      const kc = parseMachO(built[darwin]!.kc);
      const xnu = layout.boot.xnu;
      // boot_args, by raw offsets.
      expect(plan.x0).toBe(xnu.bootArgs.base);
      const ba = at(plan.x0, plan.bootArgsLayout.size);
      const dv = new DataView(ba.buffer, ba.byteOffset, ba.byteLength);
      const virtBase = dv.getBigUint64(0x08, true), physBase = dv.getBigUint64(0x10, true);
      expect(dv.getUint16(0x02, true)).toBe(2);
      expect(virtBase).toBe(kc.segments.reduce((a, s) => (s.vmaddr < a ? s.vmaddr : a), 1n << 64n) & ~0x3fffn);
      expect(physBase).toBe(xnu.kernel.base);
      expect(dv.getBigUint64(0x18, true)).toBe(layout.ram.base + layout.ram.size - physBase);
      expect(dv.getBigUint64(flagsAt + 8, true)).toBe(layout.ram.size); // memSizeActual
      const top = dv.getBigUint64(0x20, true);
      expect(top % 0x4000n).toBe(0n);
      expect(top).toBeGreaterThanOrEqual(xnu.bootArgs.base + BigInt(plan.bootArgsLayout.size));
      expect(new TextDecoder().decode(ba.subarray(0x6c, 0x6c + 9))).toBe('rd=md0 -v');
      // Every segment at physBase + (vmaddr - virtBase), byte for byte; zerofill stays zero.
      for (const s of kc.segments) {
        const got = at(physBase + (s.vmaddr - virtBase), Number(s.vmsize));
        expect(Buffer.compare(got.subarray(0, Number(s.filesize)), built[darwin]!.kc.subarray(Number(s.fileoff), Number(s.fileoff + s.filesize)))).toBe(0);
        expect(got.subarray(Number(s.filesize)).every((b) => b === 0)).toBe(true);
      }
      // The entry is the kernel's __start (llvm-objdump's view of the linked kernel).
      const objdump = tool('llvm-objdump');
      if (objdump) {
        const syms = spawnSync(objdump, ['--syms', built[darwin]!.kernel], { encoding: 'utf8' }).stdout;
        const start = BigInt('0x' + /^([0-9a-f]+) .* __start$/m.exec(syms)![1]!);
        const text = /^([0-9a-f]+) .* __mh_execute_header$/m.exec(syms)!;
        const off = Number(start - BigInt('0x' + text[1]!));
        const kernelBytes = readFileSync(built[darwin]!.kernel);
        expect(Buffer.compare(at(plan.entry, 16), kernelBytes.subarray(off, off + 16))).toBe(0);
      }
      // The ADT at deviceTreeP (a virtual address), with the memory map iBoot would write.
      const dtPa = dv.getBigUint64(0x60, true) - virtBase + physBase;
      expect(dtPa).toBe(xnu.deviceTree.base);
      const dtLen = dv.getUint32(0x68, true);
      const tree = parseAdt(at(dtPa, dtLen));
      const mm = Object.fromEntries(adtMemoryMap(tree).map((e) => [e.name, e]));
      expect(mm.DeviceTree).toMatchObject({ paddr: dtPa, size: BigInt(dtLen) });
      expect(mm.BootArgs).toMatchObject({ paddr: plan.x0, size: BigInt(plan.bootArgsLayout.size) });
      expect(mm.RAMDisk).toMatchObject({ paddr: xnu.ramdisk.base, size: BigInt(ramdisk.length) });
      expect(Buffer.compare(at(xnu.ramdisk.base, ramdisk.length), ramdisk)).toBe(0);
      const text = kc.segments.find((s) => s.segname === '__TEXT')!;
      expect(mm['Kernel-__TEXT']!.paddr).toBe(physBase + (text.vmaddr - virtBase));
      expect(mm['Kernel-__LINKEDIT']).toBeDefined();
      // Like iBoot's: entries never overlap, and the Kernel-* ones cover every segment.
      const all = adtMemoryMap(tree).filter((e) => e.size > 0n).sort((a, b) => (a.paddr < b.paddr ? -1 : 1));
      for (let i = 1; i < all.length; i++) expect(all[i]!.paddr, `${all[i - 1]!.name} overlaps ${all[i]!.name}`).toBeGreaterThanOrEqual(all[i - 1]!.paddr + all[i - 1]!.size);
      const kernelBytes = all.filter((e) => e.name.startsWith('Kernel-')).reduce((a, e) => a + e.size, 0n);
      expect(kernelBytes).toBe(kc.segments.filter((s) => s.vmsize > 0n).reduce((a, s) => a + s.vmsize, 0n));
      expect(findAdt(tree, '/cpus')!.node.children).toHaveLength(4);
    });
  }

  it('damaged collections (300 mutations of the load commands) give only m1prep errors', () => {
    const layout = selectCpus(layoutAll, 1);
    const adt = serializeAdt(deriveAdt(baseAdt, layout));
    const kc = built['21.4.0']!.kc;
    const sizeofcmds = new DataView(kc.buffer, kc.byteOffset).getUint32(20, true);
    let planned = 0;
    for (let seed = 0; seed < 300; seed++) {
      const k = kc.slice();
      const h = createHash('sha256').update(`kc:${seed}`).digest();
      for (let i = 0; i < 4; i++) k[32 + (h.readUInt32LE(i * 8) % sizeofcmds)] = h[i * 8 + 4]!;
      try {
        planXnuBoot({ kernel: k, adt, bootArgs: '', darwin: '21.4.0', layout });
        planned++;
      } catch (e) {
        expect(e, String(e)).toBeInstanceOf(M1prepError);
      }
    }
    expect(planned).toBeLessThan(300);
  });

  it.skipIf(!tryLoadUnicorn())('a kernel handed boot_args in the other layout notices it (the layout is not optional)', async () => {
    const layout = selectCpus(layoutAll, 1);
    const adt = serializeAdt(deriveAdt(baseAdt, layout));
    const run = async (kernelDarwin: string, told: string) => {
      let text = '';
      const s = await bootGuest({
        guest: 'xnu', inputs: { kernel: built[kernelDarwin]!.kc, deviceTree: adt, ramdisk, bootArgs: 'rd=md0', darwin: told }, layout, cpus: 1, backend: 'software',
        serial: { describe: 'test', onInput: null, write: (b) => { text += Buffer.from(b).toString('latin1'); }, close: () => {} },
        expect: ['\\[ok\\] boot-args'], fail: ['panic\\(cpu'], stopOnSuccess: true, timeoutS: 30, hangS: 10, trace: new Set(),
      });
      return { s, text };
    };
    for (const [kernel, wrong] of [['21.4.0', '23.4.0'], ['23.4.0', '21.4.0']] as const) {
      const right = await run(kernel, kernel);
      expect(right.s.outcome, right.text).toBe('success');
      const bad = await run(kernel, wrong);
      expect(bad.s.outcome, bad.text).toBe('panic');
      expect(bad.text).toMatch(/panic\(cpu 0 caller 0x[0-9a-f]+\): boot_args: memSizeActual .* written in another layout/);
    }
  });

  it('prunes /cpus to the CPUs that run, and leaves no placeholder', () => {
    const { plan } = boot('21.4.0', 1);
    expect(findAdt(plan.adt, '/cpus')!.node.children).toHaveLength(1);
    const stack = [plan.adt];
    while (stack.length) {
      const n = stack.pop()!;
      for (const p of n.properties) expect(p.template, p.name).toBeFalsy();
      stack.push(...n.children);
    }
  });

  it('refuses what iBoot would refuse: no fileset, a kernel larger than its window, an unknown Darwin', () => {
    const layout = selectCpus(layoutAll, 1);
    const adt = serializeAdt(deriveAdt(baseAdt, layout));
    const kernel = readFileSync(built['21.4.0']!.kernel);
    expect(() => planXnuBoot({ kernel, adt, bootArgs: '', darwin: '21.4.0', layout })).toThrow(/not an MH_FILESET/);
    const small = { ...layout, boot: { ...layout.boot, xnu: { ...layout.boot.xnu, kernel: { base: layout.boot.xnu.kernel.base, size: 0x4000n } } } };
    expect(() => planXnuBoot({ kernel: built['21.4.0']!.kc, adt, bootArgs: '', darwin: '21.4.0', layout: small })).toThrow(/reserves/);
    expect(() => planXnuBoot({ kernel: built['21.4.0']!.kc, adt, bootArgs: '', darwin: '18.0.0', layout })).toThrow(/no boot_args layout/);
    // Truncated or damaged inputs: a FormatError, not a crash.
    for (const cut of [16, 100, 2000]) {
      expect(() => planXnuBoot({ kernel: built['21.4.0']!.kc.subarray(0, cut), adt, bootArgs: '', darwin: '21.4.0', layout })).toThrow(FormatError);
    }
    expect(() => planXnuBoot({ kernel: built['21.4.0']!.kc, adt: adt.subarray(0, 40), bootArgs: '', darwin: '21.4.0', layout })).toThrow(FormatError);
  });
});
