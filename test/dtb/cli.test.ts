import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { runCli, corpus } from '../helpers/cli.js';
import { tmpDir, dtc, decompile, j274Dtb } from './dtc-oracle.js';
import { parseAdt } from '../../src/dtb/adt.js';
import { findAdt, adtRegPhysical } from '../../src/dtb/adt-views.js';
import { loadLayout, defaultLayoutPath } from '../../src/dtb/layout.js';

const dir = path.join(corpus, 'devicetree');
const RAW = path.join(dir, 'DeviceTree.j274ap.dtre');
const IM4P = path.join(dir, 'DeviceTree.j274ap.im4p');
const layout = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'));

let t: { dir: string; done: () => void };
beforeAll(() => { t = tmpDir(); });
afterAll(() => t.done());
const out = (name: string) => path.join(t.dir, name);

/** One line on stderr starting "m1prep:", no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^m1prep: /);
  return lines[0]!;
}

describe('m1prep dtree', () => {
  it('lists its subcommands in --help', () => {
    const r = runCli(['dtree', '--help']);
    expect(r.code, r.stderr).toBe(0);
    for (const s of ['build', 'edit', 'diff', 'layout']) expect(r.stdout).toContain(`dtree ${s}`);
  });

  it('shows a node of the IM4P-wrapped ADT with its physical address', () => {
    const r = runCli(['dtree', IM4P, '/arm-io/uart0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\/arm-io\/uart0\n/);
    expect(r.stdout).toMatch(/reg = <0x35200000 0x4000>\s+# phys 0x235200000\+0x4000/);
    expect(r.stderr).toMatch(/im4p:dtre/);
  });

  it('dtree --json | dtree build reproduces the ADT byte for byte', () => {
    const j = runCli(['dtree', RAW, '--json']);
    expect(j.code, j.stderr).toBe(0);
    writeFileSync(out('tree.json'), j.stdout);
    const b = runCli(['dtree', 'build', out('tree.json'), '-o', out('rebuilt.dtre')]);
    expect(b.code, b.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(out('rebuilt.dtre')), readFileSync(RAW))).toBe(0);
  });

  it('prints glob matches as JSON', () => {
    const r = runCli(['dtree', RAW, '/arm-io/*uart*', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { kind: string; matches: { path: string }[] };
    expect(j.kind).toBe('adt');
    expect(j.matches.map((m) => m.path)).toContain('/arm-io/uart0');
  });

  it('edit applies a YAML file; a failing edit exits 3 and writes nothing', () => {
    writeFileSync(out('ok.yaml'), 'edits:\n  - delete: /arm-io/uart2\n');
    const ok = runCli(['dtree', 'edit', IM4P, '--apply', out('ok.yaml'), '-o', out('edited.dtre')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(findAdt(parseAdt(new Uint8Array(readFileSync(out('edited.dtre')))), '/arm-io/uart2')).toBeUndefined();
    writeFileSync(out('bad.yaml'), 'edits:\n  - delete: /arm-io/nope\n');
    const bad = runCli(['dtree', 'edit', RAW, '--apply', out('bad.yaml'), '-o', out('never.dtre')]);
    expect(bad.code).toBe(3);
    expect(oneLine(bad.stderr)).toMatch(/no node matches/);
    expect(existsSync(out('never.dtre'))).toBe(false);
  });

  it('diff reports identical trees, and changes with --exit-code', () => {
    expect(runCli(['dtree', 'diff', RAW, IM4P]).stdout.trim()).toBe('identical');
    const r = runCli(['dtree', 'diff', RAW, out('edited.dtre'), '--exit-code']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^- node \/arm-io\/uart2$/m);
  });

  it('a truncated ADT is one FormatError line naming file, offset and node; exit 1; nothing written', () => {
    writeFileSync(out('cut.dtre'), readFileSync(RAW).subarray(0, 100_000));
    const r = runCli(['dtree', 'edit', out('cut.dtre'), '--apply', out('ok.yaml'), '-o', out('cut-out.dtre')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/cut\.dtre: offset 0x[0-9a-f]+: ADT: .*\(in node \//);
    expect(existsSync(out('cut-out.dtre'))).toBe(false);
  });

  it('an ADT whose root claims more children or properties than the file holds is named as such, with node and offset', () => {
    for (const [field, at] of [['children', 4], ['properties', 0]] as const) {
      const b = Buffer.from(readFileSync(RAW));
      b.writeUInt32LE(0xffff, at);
      writeFileSync(out(`lying-${field}.dtre`), b);
      const r = runCli(['dtree', out(`lying-${field}.dtre`)]);
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toMatch(new RegExp(`lying-${field}\\.dtre: offset 0x${at.toString(16)}: ADT: node claims 65535 ${field}, only \\d+ bytes follow \\(in node /\\)`));
    }
  });

  it('layout --check prints the device map; --json has every window', () => {
    const r = runCli(['dtree', 'layout', '--check', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { deviceMap: { name: string; base: string }[] };
    expect(j.deviceMap.find((e) => e.name === 'uart0')?.base).toBe('0x' + layout.uart0.base.toString(16));
  });

  it('layout with a broken layout file: exit 1, one line with file and line number', () => {
    writeFileSync(out('bad-layout.yaml'), readFileSync(defaultLayoutPath(), 'utf8').replace('base: 0x2_3d2b_0000', 'base: 0x2_3b10_4000'));
    const r = runCli(['dtree', 'layout', '--layout', out('bad-layout.yaml'), '--check']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/bad-layout\.yaml: offset 0x[0-9a-f]+: layout: line \d+: .*overlaps/);
  });

  it('layout --adt derives the XNU tree from the IM4P', () => {
    const r = runCli(['dtree', 'layout', '--adt', IM4P, '--cpus', '4', '-o', out('virt.adt')]);
    expect(r.code, r.stderr).toBe(0);
    const root = parseAdt(new Uint8Array(readFileSync(out('virt.adt'))));
    expect(adtRegPhysical(findAdt(root, '/arm-io/uart0')!)[0]!.addr).toBe(layout.uart0.base);
    expect(findAdt(root, '/cpus')!.node.children).toHaveLength(4);
  });

  const dtb = j274Dtb();
  it.skipIf(!dtb || !dtc)('layout --fdt derives a Linux tree dtc accepts (skipped without linux-source-6.1/dtc)', () => {
    writeFileSync(out('initrd'), new Uint8Array(1000));
    const r = runCli(['dtree', 'layout', '--fdt', dtb!, '--initrd', out('initrd'), '--bootargs', 'console=ttySAC0', '-o', out('virt.dtb')]);
    expect(r.code, r.stderr).toBe(0);
    const d = decompile(new Uint8Array(readFileSync(out('virt.dtb'))));
    expect(d.status).toBe(0);
    expect(d.stderr).toBe('');
    expect(d.dts).toMatch(/bootargs = "console=ttySAC0";/);
    expect(d.dts).toMatch(/linux,initrd-end = <0x08 0xa0003e8>;/);
  });

  it('refuses an ADT base for --fdt with exit 1', () => {
    const r = runCli(['dtree', 'layout', '--fdt', RAW, '-o', out('x.dtb')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/needs a flattened device tree/);
  });
});
