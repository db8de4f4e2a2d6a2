import { FormatError } from '../../errors.js';
import type { Machine } from '../machine.js';
import { patchChosen } from './fdt-chosen.js';
import { registerBootProtocol, type BootEntry, type BootInputs, type BootProtocol } from './protocol.js';

// The arm64 Linux boot protocol (Documentation/arm64/booting.rst): the Image at a 2 MiB aligned
// base + text_offset, the FDT 8-byte aligned, x0 = FDT, MMU off, at EL1 here. Placement comes from
// the layout's boot.linux windows. Secondary CPUs start through the FDT's spin table.

const ARM64_IMAGE_MAGIC = 0x644d5241; // "ARM\x64" at offset 56

export interface ImageHeader {
  textOffset: bigint;
  imageSize: bigint;
  flags: bigint;
}

export function parseImageHeader(image: Uint8Array, file?: string): ImageHeader {
  if (image.length < 64) throw new FormatError('arm64 Image header', 0n, `${image.length} bytes: too short for an arm64 Image`, file);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = dv.getUint32(56, true);
  if (magic !== ARM64_IMAGE_MAGIC) throw new FormatError('arm64 Image header', 56n, `magic 0x${magic.toString(16)} is not "ARM\\x64" (is this a compressed Image.gz or a vmlinux ELF?)`, file);
  const textOffset = dv.getBigUint64(8, true);
  let imageSize = dv.getBigUint64(16, true);
  // image_size 0 means a kernel older than 3.17: use the file size.
  if (imageSize === 0n) imageSize = BigInt(image.length);
  return { textOffset, imageSize, flags: dv.getBigUint64(24, true) };
}

export const linuxBoot: BootProtocol = {
  name: 'linux',
  load(m: Machine, inp: BootInputs): BootEntry {
    const win = m.layout.boot.linux;
    const hdr = parseImageHeader(inp.kernel);
    const base = win.image.base + hdr.textOffset;
    if (hdr.textOffset + hdr.imageSize > win.image.size) {
      throw new FormatError('arm64 Image header', 16n, `image_size 0x${hdr.imageSize.toString(16)} does not fit the layout's image window (0x${win.image.size.toString(16)} bytes)`);
    }
    m.load(base, inp.kernel);
    const placed = [{ what: 'Image', base, size: hdr.imageSize }];
    let initrd: { start: bigint; end: bigint } | undefined;
    if (inp.initrd) {
      if (BigInt(inp.initrd.length) > win.initrd.size) throw new FormatError('initrd', 0n, `${inp.initrd.length} bytes exceed the layout's initrd window (0x${win.initrd.size.toString(16)})`);
      m.load(win.initrd.base, inp.initrd);
      initrd = { start: win.initrd.base, end: win.initrd.base + BigInt(inp.initrd.length) };
      placed.push({ what: 'initrd', base: win.initrd.base, size: BigInt(inp.initrd.length) });
    }
    if (!inp.deviceTree) throw new FormatError('FDT', 0n, 'a Linux boot needs a flattened device tree');
    const { bytes, cpus } = patchChosen(inp.deviceTree, { bootargs: inp.bootArgs, initrd });
    if (BigInt(bytes.length) > win.fdt.size) throw new FormatError('FDT', 0n, `${bytes.length} bytes exceed the layout's FDT window`);
    m.load(win.fdt.base, bytes);
    placed.push({ what: 'FDT', base: win.fdt.base, size: BigInt(bytes.length) });
    for (const c of cpus) {
      const idx = m.layout.cpus.findIndex((l) => l.mpidr === c.mpidr);
      if (idx > 0) m.watchRelease(idx, c.releaseAddr);
    }
    return { pc: base, x0: win.fdt.base, placed };
  },
};

registerBootProtocol(linuxBoot);
