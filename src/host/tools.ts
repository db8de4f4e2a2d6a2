import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

// Locating external programs (oracles, toolchains). Debian installs some LLVM tools only with a
// version suffix, so candidates are tried in order.

const cache = new Map<string, string | null>();

export function which(names: string | string[]): string | null {
  const list = Array.isArray(names) ? names : [names];
  const key = list.join('|');
  if (cache.has(key)) return cache.get(key)!;
  let found: string | null = null;
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/sbin', '/usr/lib/llvm-14/bin']);
  outer: for (const n of list) {
    for (const d of dirs) {
      const p = path.join(d, n);
      try {
        accessSync(p, constants.X_OK);
        found = p;
        break outer;
      } catch { /* keep looking */ }
    }
  }
  cache.set(key, found);
  return found;
}

/** The well-known tools, by role, with the names Debian 12 gives them. */
export const TOOLS = {
  clang: ['clang', 'clang-14'],
  'ld64.lld': ['ld64.lld', 'ld64.lld-14'],
  'llvm-objdump': ['llvm-objdump', 'llvm-objdump-14'],
  'llvm-objdump-19': ['llvm-objdump-19'],
  'llvm-readobj': ['llvm-readobj', 'llvm-readobj-14'],
  dtc: ['dtc'],
  apfsck: ['apfsck'],
  fsapfsinfo: ['fsapfsinfo'],
  fls: ['fls'],
  '7zz': ['7zz'],
  'qemu-system-aarch64': ['qemu-system-aarch64'],
  'aarch64-linux-gnu-gcc': ['aarch64-linux-gnu-gcc'],
  tcpdump: ['tcpdump'],
  setfattr: ['setfattr'],
} as const satisfies Record<string, string[]>;

export type ToolName = keyof typeof TOOLS;

export function tool(name: ToolName): string | null {
  return which([...TOOLS[name]]);
}

export function toolVersion(p: string): string {
  const r = spawnSync(p, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => /\d+\.\d+/.test(l)) ?? '';
  return text.trim().slice(0, 80);
}
