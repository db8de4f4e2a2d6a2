import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tool } from '../../src/host/tools.js';
import { repoRoot } from '../helpers/cli.js';
import type { Fdt, FdtNode } from '../../src/dtb/fdt.js';

// dtc as the independent oracle for FDTs: it compiles our test sources, decompiles our output,
// and its dts rendering of a blob is compared with ours.

export const dtc = tool('dtc');

export function tmpDir(): { dir: string; done: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-dtb-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

export function compileDts(source: string): Uint8Array {
  const t = tmpDir();
  try {
    writeFileSync(path.join(t.dir, 'in.dts'), source);
    const r = spawnSync(dtc!, ['-q', '-I', 'dts', '-O', 'dtb', '-o', path.join(t.dir, 'out.dtb'), path.join(t.dir, 'in.dts')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`dtc failed: ${r.stderr}`);
    return new Uint8Array(readFileSync(path.join(t.dir, 'out.dtb')));
  } finally {
    t.done();
  }
}

/** dtc -I dtb -O dts of a blob: its view of the tree, and whatever it complains about. */
export function decompile(blob: Uint8Array): { status: number; dts: string; stderr: string } {
  const t = tmpDir();
  try {
    const f = path.join(t.dir, 'in.dtb');
    writeFileSync(f, blob);
    const r = spawnSync(dtc!, ['-I', 'dtb', '-O', 'dts', f], { encoding: 'utf8' });
    return { status: r.status ?? -1, dts: r.stdout, stderr: r.stderr };
  } finally {
    t.done();
  }
}

/** Lines "path prop = value" (or "path prop") from dtc's dts output, in order. */
export function dtsLines(dts: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const raw of dts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('/dts-v1/') || line.startsWith('/memreserve/')) continue;
    if (line.endsWith(' {')) {
      const name = line.slice(0, -2);
      stack.push(name === '/' ? '' : name);
    } else if (line === '};') {
      stack.pop();
    } else {
      const p = stack.join('/') || '/';
      out.push(`${p} ${line.replace(/;$/, '')}`);
    }
  }
  return out;
}

/** The memreserve lines of dtc's dts output as [address, size] pairs. */
export function dtsMemreserve(dts: string): [bigint, bigint][] {
  return [...dts.matchAll(/^\/memreserve\/\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+);/gm)].map((m) => [BigInt(m[1]!), BigInt(m[2]!)]);
}

// dtc's guess_value_type (treesource.c): a string if NUL-terminated, every byte printable or NUL
// or a C escape, and no more NULs than other bytes; else cells if the length is a multiple of 4;
// else bytes.
function isStringByte(c: number): boolean {
  return (c >= 0x20 && c < 0x7f) || c === 0 || (c >= 7 && c <= 13);
}

function renderValue(v: Uint8Array): string {
  if (v.length === 0) return '';
  const nul = v.filter((c) => c === 0).length;
  if (v[v.length - 1] === 0 && v.every(isStringByte) && nul <= v.length - nul) {
    const esc: Record<number, string> = { 0: '\\0', 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
    let s = '';
    for (let i = 0; i < v.length - 1; i++) s += esc[v[i]!] ?? String.fromCharCode(v[i]!);
    return `"${s}"`;
  }
  if (v.length % 4 === 0) {
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const cells: string[] = [];
    for (let i = 0; i < v.length; i += 4) cells.push('0x' + dv.getUint32(i).toString(16).padStart(2, '0'));
    return `<${cells.join(' ')}>`;
  }
  return `[${[...v].map((b) => b.toString(16).padStart(2, '0')).join(' ')}]`;
}

/** Our parse rendered the way dtsLines() reads dtc's output. */
export function ourLines(fdt: Fdt): string[] {
  const out: string[] = [];
  const visit = (n: FdtNode, p: string) => {
    for (const prop of n.properties) {
      const v = renderValue(prop.value);
      out.push(`${p || '/'} ${prop.name}${v ? ` = ${v}` : ''}`);
    }
    for (const c of n.children) visit(c, `${p}/${c.name}`);
  };
  visit(fdt.root, '');
  return out;
}

/** Linux's upstream t8103-j274 blob, built by scripts/build-t8103-dtb.sh (null when the kernel source is absent). */
export function j274Dtb(): string | null {
  if (!dtc || !existsSync(process.env.LINUX_SOURCE_TARBALL ?? '/usr/src/linux-source-6.1.tar.xz')) return null;
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts/build-t8103-dtb.sh')], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`build-t8103-dtb.sh failed: ${r.stderr}`);
  return r.stdout.trim();
}
