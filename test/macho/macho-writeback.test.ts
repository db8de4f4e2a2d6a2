import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpus } from '../helpers/cli.js';
import { openMachO, writeBack } from '../../src/macho/macho-open.js';
import { packIm4p, openContainer } from '../../src/macho/container.js';
import { parseMachO, serializeMachO } from '../../src/macho/macho.js';
import { buildFileset } from '../../src/macho/fileset-builder.js';
import { listKexts } from '../../src/macho/kext.js';
import { buildKcFixtures, toolchainMissing } from '../fixtures/kc/build.js';

// Writing a file back after opening it (containers peeled, fat slice picked, Mach-O parsed):
// byte-identical when nothing changed, raw or re-packed as IM4P; an edit survives the trip.

describe('Mach-O write-back', () => {
  it('fat and thin corpus files come back byte-identical', () => {
    for (const f of ['macho/ls-sequoia', 'macho/hello-mte', 'kernel/dyld-kc-tests/fixups-arm64e/main.kernel']) {
      const b = new Uint8Array(readFileSync(path.join(corpus, f)));
      expect(Buffer.compare(writeBack(openMachO(b)), b), f).toBe(0);
    }
  });

  it.skipIf(toolchainMissing() !== undefined)('a kernel collection in an IM4P (LZFSE and uncompressed) comes back byte-identical, and edits survive', () => {
    const fx = buildKcFixtures();
    const kc = buildFileset({ kernel: readFileSync(fx.kernel), kexts: [{ id: 'com.example.kexta', macho: readFileSync(fx.kexta), infoPlist: fx.kextaPlist }] });
    for (const compression of ['lzfse', 'none'] as const) {
      const im4p = packIm4p({ fourcc: 'krnl', description: 'KernelCacheBuilder-test', payload: kc, compression });
      const o = openMachO(im4p);
      expect(o.container.layers[0]).toBe('im4p:krnl');
      expect(o.macho!.header.filetype).toBe(0xc);
      expect(listKexts(o.macho!).map((r) => r.id)).toEqual(['com.example.kexta']);
      expect(Buffer.compare(writeBack(o), im4p), compression).toBe(0);
      // Re-packing the re-serialized collection (what writeBack does after an edit) is also
      // byte-identical here, because our LZFSE encoder is deterministic.
      expect(Buffer.compare(o.container.repack(serializeMachO(o.macho!)), im4p), compression).toBe(0);
      // An edit (the top-level header's reserved field) comes back through the container.
      o.macho!.header.reserved = 0x1234;
      const edited = writeBack(o);
      const again = parseMachO(openContainer(edited).payload);
      expect(again.header.reserved).toBe(0x1234);
      o.macho!.header.reserved = 0;
      expect(Buffer.compare(openContainer(edited).payload.subarray(32), kc.subarray(32))).toBe(0);
      expect(openContainer(edited).fourcc).toBe('krnl');
    }
  });
});
