import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './run.js';
import { ByteSink, encodeUleb } from '../src/macho/macho-bytes.js';
import { buildFileset } from '../src/macho/fileset-builder.js';
import { which } from '../src/host/tools.js';

// `m1prep kexts` on a 100 MiB kernel collection with 300 kexts, made by our fileset builder from
// synthetic images (a kernel exporting functions, kexts with rebases and binds into it). The work
// runs in a child process that reports its own time and peak RSS; baselines in the same run: a
// plain read of the file, and llvm-objdump (LLVM 19 reads MH_FILESET) printing the headers.

const here = path.dirname(fileURLToPath(import.meta.url));
const KEXTS = 300;
const KEXT_TEXT = 320 * 1024;
const KERNEL_TEXT = 4 * 1024 * 1024;
const PAGE = 0x4000;

const LC_SEGMENT_64 = 0x19, LC_SYMTAB = 0x2, LC_DYLD_INFO_ONLY = 0x80000022, LC_UNIXTHREAD = 0x5;

/** A minimal arm64 image: __TEXT (header + filler code), __DATA (pointers), __LINKEDIT. */
function image(o: { filetype: number; textSize: number; dataPtrs: number; binds: string[]; exports: string[]; version?: string; entry?: boolean }): Uint8Array {
  const textSize = Math.ceil(o.textSize / PAGE) * PAGE;
  const dataAddr = textSize;
  const dataSize = PAGE;
  // __LINKEDIT: rebase opcodes (own pointers), bind opcodes (imports), symbols, strings.
  const le = new ByteSink();
  const rebaseOff = 0;
  le.u8(0x11); // REBASE_OPCODE_SET_TYPE_IMM | REBASE_TYPE_POINTER
  le.u8(0x21).bytes(encodeUleb(0n)); // SET_SEGMENT_AND_OFFSET_ULEB seg 1 offset 0
  le.u8(0x60).bytes(encodeUleb(BigInt(o.dataPtrs))); // DO_REBASE_ULEB_TIMES
  le.u8(0x00).align(8);
  const rebaseSize = le.length - rebaseOff;
  const bindOff = le.length;
  o.binds.forEach((name, i) => {
    le.u8(0x51); // BIND_OPCODE_SET_TYPE_IMM pointer
    le.u8(0x3e); // BIND_OPCODE_SET_DYLIB_SPECIAL_IMM flat lookup (-2)
    le.u8(0x40).cstr(name); // SET_SYMBOL_TRAILING_FLAGS_IMM
    le.u8(0x71).bytes(encodeUleb(BigInt((o.dataPtrs + i) * 8))); // segment 1
    le.u8(0x90); // DO_BIND
  });
  le.u8(0x00).align(8);
  const bindSize = le.length - bindOff;
  const symOff = le.length;
  const names = new ByteSink().u8(0x20).u8(0);
  const strx = o.exports.map((n) => { const at = names.length; names.cstr(n); return at; });
  o.exports.forEach((_n, i) => le.u32(strx[i]!).u8(0x0f).u8(1).u16(0).u64(0x1000n + BigInt(i * 16))); // N_SECT|N_EXT in __text
  const strOff = le.length;
  le.bytes(names.result()).align(8);
  const strSize = le.length - strOff;
  const leBytes = le.result();
  const leFileoff = textSize + dataSize;

  const cmds = new ByteSink();
  const seg = (name: string, vmaddr: number, vmsize: number, fileoff: number, filesize: number, prot: number, sect?: [string, number, number]) => {
    cmds.u32(LC_SEGMENT_64).u32(72 + (sect ? 80 : 0)).fixed(name, 16).u64(BigInt(vmaddr)).u64(BigInt(vmsize)).u64(BigInt(fileoff)).u64(BigInt(filesize)).u32(prot).u32(prot).u32(sect ? 1 : 0).u32(0);
    if (sect) cmds.fixed(sect[0], 16).fixed(name, 16).u64(BigInt(sect[1])).u64(BigInt(sect[2])).u32(sect[1]).u32(3).u32(0).u32(0).u32(0).u32(0).u32(0).u32(0);
  };
  seg('__TEXT', 0, textSize, 0, textSize, 5, ['__text', 0x1000, textSize - 0x1000]);
  seg('__DATA', dataAddr, dataSize, dataAddr, dataSize, 3, ['__data', dataAddr, (o.dataPtrs + o.binds.length) * 8]);
  seg('__LINKEDIT', leFileoff, Math.ceil(leBytes.length / PAGE) * PAGE, leFileoff, leBytes.length, 1);
  cmds.u32(LC_DYLD_INFO_ONLY).u32(48).u32(leFileoff + rebaseOff).u32(rebaseSize).u32(leFileoff + bindOff).u32(bindSize).zeros(24);
  cmds.u32(LC_SYMTAB).u32(24).u32(leFileoff + symOff).u32(o.exports.length).u32(leFileoff + strOff).u32(strSize);
  if (o.entry) cmds.u32(LC_UNIXTHREAD).u32(288).u32(6).u32(68).zeros(256).u64(0x1000n).zeros(8);
  const c = cmds.result();
  const out = new Uint8Array(leFileoff + leBytes.length);
  const h = new ByteSink().u32(0xfeedfacf).u32(0x0100000c).u32(0).u32(o.filetype).u32(o.entry ? 6 : 5).u32(c.length).u32(0x200085).u32(0).result();
  out.set(h, 0);
  out.set(c, 32);
  // Filler "code" (a repeating pattern: the content does not matter to listing).
  for (let i = 0x1000; i < textSize; i += 4) out[i] = (i * 2654435761) >>> 24;
  if (o.version) out.set(new TextEncoder().encode(o.version + '\0'), 0x1000 + 64 * 16);
  for (let i = 0; i < o.dataPtrs; i++) new DataView(out.buffer).setBigUint64(dataAddr + i * 8, 0x1000n + BigInt(i * 16), true);
  out.set(leBytes, leFileoff);
  return out;
}

export function makeCollection(): Uint8Array {
  const kernelExports = Array.from({ length: 64 }, (_, i) => `_kern_fn_${i}`);
  const kernel = image({ filetype: 2, textSize: KERNEL_TEXT, dataPtrs: 64, binds: [], exports: kernelExports, version: 'Darwin Kernel Version 22.1.0: synthetic', entry: true });
  const kexts = Array.from({ length: KEXTS }, (_, i) => ({
    id: `com.example.bench.kext${i}`,
    macho: image({ filetype: 8, textSize: KEXT_TEXT, dataPtrs: 32, binds: [`_kern_fn_${i % 64}`, `_kern_fn_${(i * 7) % 64}`], exports: [`_kext${i}_start`] }),
    infoPlist: `<?xml version="1.0"?><plist version="1.0"><dict><key>CFBundleIdentifier</key><string>com.example.bench.kext${i}</string><key>CFBundleVersion</key><string>1.${i}.0</string></dict></plist>`,
  }));
  return buildFileset({ kernel, kexts });
}

/** Runs in a child, so that its peak RSS is the work's own: 'list' = read + parse + list, 'read' = a plain read. */
const CHILD = `
const { readFileSync } = await import('node:fs');
const [, dist, f, mode] = process.argv;
const t0 = process.hrtime.bigint();
const buf = readFileSync(f);
let kexts = 0, versions = 0;
if (mode === 'list') {
  const { openMachO } = await import(dist + '/src/macho/macho-open.js');
  const { listKexts } = await import(dist + '/src/macho/kext.js');
  const rows = listKexts(openMachO(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), { requireMachO: true }).macho);
  kexts = rows.length;
  versions = rows.filter((r) => r.version).length;
}
const s = Number(process.hrtime.bigint() - t0) / 1e9;
// VmHWM is this program's own peak; getrusage's maxRSS also counts the parent's pages copied at fork.
let rssMiB = process.resourceUsage().maxRSS / 1024;
try { rssMiB = Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024; } catch {}
process.stdout.write(JSON.stringify({ kexts, versions, s, rssMiB }));
`;

interface ChildResult { kexts: number; versions: number; s: number; rssMiB: number }

function child(dist: string, file: string, mode: 'list' | 'read'): ChildResult {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, dist, file, mode], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as ChildResult;
}

const bestOf = (rs: ChildResult[]) => rs.reduce((a, b) => (b.s < a.s ? b : a));

export default async function (): Promise<BenchResult[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-bench-kexts-'));
  try {
    const t0 = process.hrtime.bigint();
    const kc = makeCollection();
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    const file = path.join(dir, 'bench.kc');
    writeFileSync(file, kc);
    const sizeMiB = kc.length / 2 ** 20;
    const dist = path.resolve(here, '..');
    const best = bestOf([0, 1, 2].map(() => child(dist, file, 'list')));
    const read = bestOf([0, 1, 2].map(() => child(dist, file, 'read')));
    // The whole CLI (node start, every command module loaded, JSON out): wall and CPU time, the
    // latter reported by the CLI process itself at exit (wall time suffers on a loaded machine).
    const cli = (() => {
      const script = `process.argv = [process.argv[0], 'm1prep', 'kexts', ${JSON.stringify(file)}, '--json'];
process.on('exit', () => { const u = process.cpuUsage(); process.stderr.write('CPU ' + (u.user + u.system) / 1e6 + '\\n'); });
await import(${JSON.stringify(path.resolve(here, '../src/cli/main.js'))});`;
      const s = process.hrtime.bigint();
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(r.stderr);
      const cpu = Number(/CPU ([\d.]+)/.exec(r.stderr)?.[1] ?? NaN);
      return { wall: Number(process.hrtime.bigint() - s) / 1e9, cpu };
    })();
    const results: BenchResult[] = [{
      name: `kexts: list ${best.kexts} kexts (${best.versions} versions), ${sizeMiB.toFixed(0)} MiB collection`,
      value: `${best.s.toFixed(3)} s`,
      baseline: `plain readFileSync ${read.s.toFixed(3)} s (peak RSS ${read.rssMiB.toFixed(0)} MiB)`,
      ratio: read.s / best.s,
      peakRssMiB: best.rssMiB,
      note: `read+parse+list (ratio = read time / ours); peak RSS ${(best.rssMiB / sizeMiB).toFixed(2)}x file size; whole "m1prep kexts --json" run ${cli.wall.toFixed(2)} s wall, ${cli.cpu.toFixed(2)} s CPU; builder made the file in ${buildS.toFixed(1)} s`,
    }];
    const od = which(['llvm-objdump-19']);
    if (od) {
      const s = process.hrtime.bigint();
      const r = spawnSync(od, ['--macho', '--private-headers', file], { encoding: 'utf8', maxBuffer: 256 << 20 });
      const odS = Number(process.hrtime.bigint() - s) / 1e9;
      if (r.status === 0) {
        results.push({ name: 'kexts: baseline llvm-objdump-19 --private-headers', value: `${odS.toFixed(3)} s`, baseline: 'same file', ratio: odS / best.s, note: 'ratio = llvm-objdump time / our list time (>1: we are faster)' });
      }
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
