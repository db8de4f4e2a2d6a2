import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parseFdt, serializeFdt } from '../../src/dtb/fdt.js';
import { fdtToJson, fdtFromJson } from '../../src/dtb/tree-json.js';
import { queryFdt } from '../../src/dtb/fdt-views.js';
import { toJson } from '../../src/util/hex.js';
import { FormatError } from '../../src/errors.js';
import { dtc, compileDts, decompile, dtsLines, dtsMemreserve, ourLines, j274Dtb } from './dtc-oracle.js';

// A source exercising what dtc can express: reservations, nesting, labels/phandles, strings
// lists, cells, bytes, empty properties, 64-bit cells, names sharing a suffix in the strings block.
const SAMPLE = `/dts-v1/;
/memreserve/ 0x80000000 0x10000;
/memreserve/ 0x810000000 0x2000;
/ {
  #address-cells = <2>;
  #size-cells = <2>;
  compatible = "vendor,board", "vendor,soc";
  model = "tab\\there \\"quoted\\"";
  cpus {
    #address-cells = <1>;
    #size-cells = <0>;
    cpu0: cpu@0 { device_type = "cpu"; reg = <0>; enable-method = "spin-table"; cpu-release-addr = /bits/ 64 <0x800000000>; };
    cpu@1 { device_type = "cpu"; reg = <1>; next = <&cpu0>; };
  };
  soc {
    ranges;
    intc: interrupt-controller@1000 { interrupt-controller; #interrupt-cells = <3>; reg = <0 0x1000 0 0x100>; };
    serial@2000 { interrupt-parent = <&intc>; interrupts = <0 5 4>; mac = [00 11 22 33 44 55]; size-cells = <7>; odd = [01 02 03]; };
  };
  empty-node { };
};
`;

describe.skipIf(!dtc)('FDT against dtc (skipped: dtc is not installed)', () => {
  let blob: Uint8Array;
  beforeAll(() => { blob = compileDts(SAMPLE); });

  it('round-trips a dtc-built blob byte for byte', () => {
    expect(Buffer.compare(Buffer.from(serializeFdt(parseFdt(blob))), Buffer.from(blob))).toBe(0);
  });

  it('sees the same nodes, properties and values as dtc', () => {
    const fdt = parseFdt(blob);
    const d = decompile(blob);
    expect(d.status).toBe(0);
    expect(dtsLines(d.dts).length).toBeGreaterThan(20);
    expect(ourLines(fdt)).toEqual(dtsLines(d.dts));
    expect(fdt.memReserve.map((r) => [r.address, r.size])).toEqual(dtsMemreserve(d.dts));
  });

  it('shares strings-block suffixes exactly as dtc does', () => {
    const names = ['long-suffix-name', 'x-long-suffix-name', 'suffix-name', 'e', 'me', 'cells', '#size-cells', 'size-cells', 'ab', 'b', 'zz-long-suffix-name'];
    // Several orders, so that names arrive before and after the longer names they end.
    for (const order of [names, [...names].reverse(), [...names].sort()]) {
      const blob = compileDts(`/dts-v1/;\n/ { ${order.map((n, i) => `${n} = <${i}>;`).join(' ')} };\n`);
      expect(Buffer.compare(Buffer.from(serializeFdt(parseFdt(blob))), Buffer.from(blob))).toBe(0);
    }
  });

  it('JSON -> blob is byte-identical', () => {
    const json = JSON.parse(toJson(fdtToJson(parseFdt(blob))));
    expect(Buffer.compare(Buffer.from(serializeFdt(fdtFromJson(json))), Buffer.from(blob))).toBe(0);
  });

  it('finds nodes by path, unit-less path and glob', () => {
    const fdt = parseFdt(blob);
    expect(queryFdt(fdt.root, '/cpus/cpu@1').map((f) => f.path)).toEqual(['/cpus/cpu@1']);
    expect(queryFdt(fdt.root, '/soc/serial').map((f) => f.path)).toEqual(['/soc/serial@2000']);
    expect(queryFdt(fdt.root, '/**/cpu*').map((f) => f.path)).toEqual(['/cpus', '/cpus/cpu@0', '/cpus/cpu@1']);
  });

  it('produces blobs dtc accepts after edits to the tree', () => {
    const fdt = parseFdt(blob);
    fdt.root.children.push({ name: 'added@10', properties: [{ name: 'reg', value: new Uint8Array([0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 4]) }], children: [] });
    const d = decompile(serializeFdt(fdt));
    expect(d.status).toBe(0);
    expect(d.dts).toMatch(/added@10 \{\s*reg = <0x00 0x10 0x00 0x04>;/);
  });
});

describe('FDT: the upstream t8103-j274 tree (skipped when linux-source-6.1 or dtc is absent)', () => {
  const dtb = j274Dtb();
  it.skipIf(!dtb)('round-trips Linux\'s j274 blob byte for byte and matches dtc\'s view', () => {
    const blob = new Uint8Array(readFileSync(dtb!));
    const fdt = parseFdt(blob);
    expect(Buffer.compare(Buffer.from(serializeFdt(fdt)), Buffer.from(blob))).toBe(0);
    expect(ourLines(fdt)).toEqual(dtsLines(decompile(blob).dts));
  });
});

// Device trees shipped with Debian's QEMU (PowerPC boards, built by dtc elsewhere): third-party blobs.
const qemuDtbs = existsSync('/usr/share/qemu') ? readdirSync('/usr/share/qemu').filter((f) => f.endsWith('.dtb')).map((f) => path.join('/usr/share/qemu', f)) : [];
describe.skipIf(!dtc || qemuDtbs.length === 0)('FDT: QEMU\'s shipped .dtb files (skipped without qemu-system data or dtc)', () => {
  it.each(qemuDtbs)('%s round-trips and matches dtc', (f) => {
    const blob = new Uint8Array(readFileSync(f));
    const fdt = parseFdt(blob);
    expect(Buffer.compare(Buffer.from(serializeFdt(fdt)), Buffer.from(blob))).toBe(0);
    expect(ourLines(fdt)).toEqual(dtsLines(decompile(blob).dts));
  });
});

describe('FDT: bad input', () => {
  const good = dtc ? compileDts(SAMPLE) : null;
  const bad = (mutate: (b: Uint8Array, dv: DataView) => void) => {
    const b = new Uint8Array(good!);
    mutate(b, new DataView(b.buffer));
    try {
      parseFdt(b);
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      return (e as FormatError).oneLine();
    }
    throw new Error('accepted');
  };
  it.skipIf(!good)('rejects a wrong magic, a totalsize past the end, a truncated blob', () => {
    expect(bad((b) => { b[0] = 0; })).toMatch(/offset 0x0: FDT: bad magic/);
    expect(bad((_b, dv) => dv.setUint32(4, 1 << 30))).toMatch(/totalsize .* larger than the file/);
    expect(() => parseFdt(good!.subarray(0, 100))).toThrow(FormatError);
  });
  it.skipIf(!good)('rejects a property length past the structure block and names the node', () => {
    const fdt = good!;
    const dv = new DataView(fdt.buffer, fdt.byteOffset);
    const offStruct = dv.getUint32(8);
    // The first FDT_PROP token of the root (after BEGIN_NODE + "\0" padded to 4).
    const msg = bad((_b, d) => d.setUint32(offStruct + 8 + 4, 0x7fff_0000));
    expect(msg).toMatch(/property is \d+ bytes, only \d+ left in the structure block \(in node \/\)/);
  });
});
