import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { which } from '../src/host/tools.js';

// Shared by bench/vmm.bench.ts and test/vmm. Assembles a tiny arm64 guest with Debian's clang + ld.lld + llvm-objcopy into a flat binary
// linked at `base`.

export const asmTools = {
  clang: which(['clang', 'clang-14']),
  lld: which(['ld.lld', 'ld.lld-14']),
  objcopy: which(['llvm-objcopy', 'llvm-objcopy-14']),
};
export const canAssemble = Boolean(asmTools.clang && asmTools.lld && asmTools.objcopy);

export function assemble(source: string, base: bigint): Uint8Array {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-asm-'));
  try {
    const s = path.join(dir, 'g.S'), o = path.join(dir, 'g.o'), elf = path.join(dir, 'g.elf'), bin = path.join(dir, 'g.bin');
    writeFileSync(s, source);
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
    };
    run(asmTools.clang!, ['-target', 'aarch64-none-elf', '-march=armv8.2-a', '-c', s, '-o', o]);
    run(asmTools.lld!, ['-Ttext', `0x${base.toString(16)}`, '-e', '_start', o, '-o', elf]);
    run(asmTools.objcopy!, ['-O', 'binary', elf, bin]);
    return new Uint8Array(readFileSync(bin));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
