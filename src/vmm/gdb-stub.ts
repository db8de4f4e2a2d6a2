import { lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { UsageError } from '../errors.js';
import type { Vcpu } from './cpu/backend.js';
import type { Machine } from './machine.js';
import type { RunLoop } from './run-loop.js';

// A GDB remote serial protocol stub on 127.0.0.1: registers (g/G/p/P in the aarch64 core layout:
// x0-x30, sp, pc, cpsr), memory by virtual address (m/M), software breakpoints (Z0/z0), single
// step (s), continue (c), stop reason (?), and Ctrl-C. The machine waits for the debugger before
// the first instruction.

interface Translating {
  translate?(va: bigint, kind: 'read' | 'write' | 'exec', el: 0 | 1, pan: boolean): { ok: true; pa: bigint } | { ok: false };
}

const REGS = 34; // x0..x30, sp, pc, cpsr

function checksum(s: string): string {
  let c = 0;
  for (let i = 0; i < s.length; i++) c = (c + s.charCodeAt(i)) & 0xff;
  return c.toString(16).padStart(2, '0');
}

function le(v: bigint, bytes: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++) out += Number((v >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, '0');
  return out;
}

function fromLe(hex: string): bigint {
  let v = 0n;
  for (let i = hex.length - 2; i >= 0; i -= 2) v = (v << 8n) | BigInt(parseInt(hex.slice(i, i + 2), 16));
  return v;
}

export class GdbSession {
  private readonly breakpoints = new Set<bigint>();
  cpu = 0;

  constructor(private readonly m: Machine, private readonly loop: RunLoop) {}

  private get vcpu(): Vcpu {
    return this.m.vcpus[this.cpu]!;
  }

  private phys(va: bigint): bigint | null {
    const t = (this.vcpu as Translating).translate?.(va, 'read', 1, false);
    if (!t) return va;
    return t.ok ? t.pa : null;
  }

  readMem(addr: bigint, len: number): Uint8Array | null {
    const out = new Uint8Array(len);
    const ram = this.m.ram;
    for (let i = 0; i < len; i++) {
      const pa = this.phys(addr + BigInt(i));
      if (pa === null || pa < ram.base || pa >= ram.base + ram.size) return i ? out.subarray(0, i) : null;
      out[i] = ram.bytes[Number(pa - ram.base)]!;
    }
    return out;
  }

  writeMem(addr: bigint, data: Uint8Array): boolean {
    const ram = this.m.ram;
    for (let i = 0; i < data.length; i++) {
      const pa = this.phys(addr + BigInt(i));
      if (pa === null || pa < ram.base || pa >= ram.base + ram.size) return false;
      ram.bytes[Number(pa - ram.base)] = data[i]!;
    }
    this.m.backend.invalidateCode(addr, BigInt(data.length));
    return true;
  }

  private regsHex(): string {
    const r = this.vcpu.getRegs();
    return r.x.map((x) => le(x, 8)).join('') + le(r.sp, 8) + le(r.pc, 8) + le(r.pstate, 4);
  }

  private setReg(n: number, v: bigint): void {
    const r = this.vcpu.getRegs();
    if (n < 31) {
      r.x[n] = v;
      this.vcpu.setRegs({ x: r.x });
    } else if (n === 31) this.vcpu.setRegs({ sp: v });
    else if (n === 32) this.vcpu.setRegs({ pc: v });
    else if (n === 33) this.vcpu.setRegs({ pstate: v });
  }

  private syncBreakpoints(): void {
    for (const v of this.m.vcpus) v.setBreakpoints?.([...this.breakpoints]);
  }

  /** Answer one packet; null means "no reply now" (continue: the reply comes at the next stop). */
  handle(p: string): string | null {
    const cmd = p[0];
    switch (cmd) {
      case '?': return 'S05';
      case 'g': return this.regsHex();
      case 'G': {
        const r = this.vcpu.getRegs();
        const x: bigint[] = [];
        for (let i = 0; i < 31; i++) x.push(fromLe(p.slice(1 + i * 16, 17 + i * 16)));
        this.vcpu.setRegs({ x, sp: fromLe(p.slice(497, 513)), pc: fromLe(p.slice(513, 529)), pstate: p.length >= 537 ? fromLe(p.slice(529, 537)) : r.pstate });
        return 'OK';
      }
      case 'p': {
        const n = parseInt(p.slice(1), 16);
        const r = this.vcpu.getRegs();
        if (n < 31) return le(r.x[n]!, 8);
        if (n === 31) return le(r.sp, 8);
        if (n === 32) return le(r.pc, 8);
        if (n === 33) return le(r.pstate, 4);
        return 'E01';
      }
      case 'P': {
        const [n, v] = p.slice(1).split('=');
        const idx = parseInt(n!, 16);
        if (idx >= REGS) return 'E01';
        this.setReg(idx, fromLe(v!));
        return 'OK';
      }
      case 'm': {
        const [a, l] = p.slice(1).split(',');
        const data = this.readMem(BigInt('0x' + a), Math.min(parseInt(l!, 16), 0x4000));
        return data ? Buffer.from(data).toString('hex') : 'E14';
      }
      case 'M': {
        const [head, hex] = p.slice(1).split(':');
        const [a] = head!.split(',');
        return this.writeMem(BigInt('0x' + a), new Uint8Array(Buffer.from(hex ?? '', 'hex'))) ? 'OK' : 'E14';
      }
      case 'Z':
      case 'z': {
        const [type, a] = p.slice(1).split(',');
        if (type !== '0' && type !== '1') return '';
        const addr = BigInt('0x' + a);
        if (cmd === 'Z') this.breakpoints.add(addr);
        else this.breakpoints.delete(addr);
        try {
          this.syncBreakpoints();
        } catch {
          // More than the backend offers (KVM's hardware breakpoints): refuse this one.
          this.breakpoints.delete(addr);
          this.syncBreakpoints();
          return 'E0E';
        }
        return 'OK';
      }
      case 's': {
        const exit = this.vcpu.step?.();
        return exit && exit.kind !== 'fatal' ? 'S05' : 'E01';
      }
      case 'c':
        this.loop.resume();
        return null;
      case 'H': return 'OK';
      case 'D': this.breakpoints.clear(); this.syncBreakpoints(); this.loop.resume(); return 'OK';
      case 'k': this.loop.stop({ kind: 'requested', why: 'killed by the debugger' }); return null;
      case 'q':
        if (p.startsWith('qSupported')) return 'PacketSize=4000';
        if (p === 'qAttached') return '1';
        if (p === 'qC') return 'QC1';
        if (p === 'qfThreadInfo') return 'm' + this.m.vcpus.map((_, i) => (i + 1).toString(16)).join(',');
        if (p === 'qsThreadInfo') return 'l';
        return '';
      case 'T': return 'OK';
      case 'v': return '';
      default: return '';
    }
  }
}

/** `--gdb` takes a TCP port on 127.0.0.1 or the path of a Unix socket (gdb: `target remote PATH`). */
export function parseGdbTarget(spec: string | number): number | string {
  const t = String(spec).trim();
  if (/^\d+$/.test(t)) {
    const port = Number(t);
    if (port > 65535) throw new UsageError(`--gdb ${t}: a TCP port is 0-65535`);
    return port;
  }
  if (!t) throw new UsageError('--gdb needs a TCP port or the path of a Unix socket');
  return t;
}

/** A stale socket left by an earlier run may go; anything else at the path stays. */
function clearSocketPath(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new UsageError(`--gdb ${path}: a file that is not a socket is in the way`);
  unlinkSync(path);
}

export async function startGdbStub(m: Machine, loop: RunLoop, target: number | string, log: (l: string) => void): Promise<{ close: () => void; port: number | string }> {
  const session = new GdbSession(m, loop);
  loop.pause();
  let client: net.Socket | null = null;
  const send = (s: string) => client?.write(`$${s}#${checksum(s)}`);
  loop.onDebugStop = (cpu) => {
    session.cpu = cpu;
    send('S05');
  };
  const server = net.createServer((sock) => {
    client?.destroy();
    client = sock;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        if (buf.startsWith('+') || buf.startsWith('-')) { buf = buf.slice(1); continue; }
        if (buf.startsWith('\x03')) {
          buf = buf.slice(1);
          loop.pause();
          send('S02');
          continue;
        }
        const start = buf.indexOf('$');
        const hash = buf.indexOf('#', start);
        if (start < 0 || hash < 0 || buf.length < hash + 3) break;
        const pkt = buf.slice(start + 1, hash);
        buf = buf.slice(hash + 3);
        sock.write('+');
        const reply = session.handle(pkt);
        if (reply !== null) send(reply);
      }
    });
    sock.on('close', () => { if (client === sock) { client = null; loop.resume(); } });
    sock.on('error', () => {});
  });
  if (typeof target === 'string') clearSocketPath(target);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new UsageError(`--gdb ${target}: ${e.message}`)));
    if (typeof target === 'string') server.listen(target, () => resolve());
    else server.listen(target, '127.0.0.1', () => resolve());
  });
  const port = typeof target === 'string' ? target : (server.address() as net.AddressInfo).port;
  const [where, remote] = typeof port === 'string' ? [port, port] : [`127.0.0.1:${port}`, `:${port}`];
  log(`gdb: waiting for a debugger on ${where} (gdb-multiarch -ex "target remote ${remote}")`);
  return { close: () => { client?.destroy(); server.close(); }, port };
}
