import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { which } from '../../src/host/tools.js';

// Independent oracles for the patch tests: llvm-mc (encodings), clang + ld64.lld (real code),
// llvm-objdump (disassembly of what the engine wrote).

export const llvmMc = which(['llvm-mc', 'llvm-mc-14']);
export const clang = which(['clang', 'clang-14']);
export const ld64 = which(['ld64.lld', 'ld64.lld-14']);
export const objdump = which(['llvm-objdump', 'llvm-objdump-14']);
export const haveToolchain = Boolean(clang && ld64 && objdump);

/** Encodings llvm-mc gives each line (one instruction per line), as 32-bit words. */
export function mcEncode(lines: string[]): number[] {
  const r = spawnSync(llvmMc!, ['-triple=arm64-apple-macos', '-mattr=+v8.5a,+pauth,+bti', '--show-encoding'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llvm-mc failed: ${r.stderr}`);
  const words: number[] = [];
  for (const l of r.stdout.split('\n')) {
    const m = /encoding: \[([^\]]+)\]/.exec(l);
    if (!m) continue;
    const b = m[1]!.split(',').map((x) => parseInt(x, 16));
    words.push((b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0);
  }
  if (words.length !== lines.length) throw new Error(`llvm-mc gave ${words.length} encodings for ${lines.length} lines:\n${r.stderr}`);
  return words;
}

/** Build a static arm64(e) Mach-O executable from C source with clang + ld64.lld. */
export function buildMachO(source: string, opts: { arch?: 'arm64' | 'arm64e'; cflags?: string[]; entry?: string } = {}): { file: string; bytes: Uint8Array } {
  const dir = mkdtempSync(path.join(tmpdir(), 'm1prep-patch-'));
  const arch = opts.arch ?? 'arm64e';
  const c = path.join(dir, 'k.c');
  writeFileSync(c, source);
  const o = path.join(dir, 'k.o');
  const cc = spawnSync(clang!, ['-target', `${arch}-apple-macos12`, '-O1', '-fno-stack-protector', '-ffreestanding', ...(opts.cflags ?? []), '-c', c, '-o', o], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`clang: ${cc.stderr}`);
  const out = path.join(dir, 'k.macho');
  const ld = spawnSync(ld64!, ['-arch', arch, '-platform_version', 'macos', '12.0', '12.0', '-e', opts.entry ?? '_start', '-o', out, o], { encoding: 'utf8' });
  if (ld.status !== 0) throw new Error(`ld64.lld: ${ld.stderr}`);
  return { file: out, bytes: new Uint8Array(readFileSync(out)) };
}

/** llvm-objdump's disassembly of the function `sym` in a Mach-O file: "mnemonic operands" lines. */
export function disassembleFunction(file: string, sym: string): string[] {
  const r = spawnSync(objdump!, ['-d', '--macho', '--no-show-raw-insn', '--mattr=+v8.5a,+pauth,+bti', '--dis-symname', sym, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llvm-objdump: ${r.stderr}`);
  return r.stdout.split('\n')
    .filter((l) => /^\s*[0-9a-f]+:\s/.test(l))
    .map((l) => l.replace(/^\s*[0-9a-f]+:\s+/, '').replace(/\s*;.*$/, '').replace(/\s+/g, ' ').trim());
}
