import koffi from 'koffi';
import type { TypeObject } from 'koffi';
import { HostError } from '../../../errors.js';
import type { CpuBackend, RamRegion, SysregFilter, VcpuIdentity } from '../backend.js';
import { check, loadUnicorn, type UnicornLib } from './ffi.js';
import { UnicornVcpu } from './vcpu.js';

// The software CPU backend: one Unicorn engine per vCPU over one shared RAM buffer, run in
// instruction-count slices by the run loop (round-robin, deterministic). Each engine keeps its own
// translation cache and TLB, so code changes and broadcast TLB maintenance made by one vCPU are
// propagated to the others before they run again.

export interface SoftwareBackendOptions {
  /** System registers the VMM emulates; accesses to them reach the exit handler. */
  sysregFilter: SysregFilter;
  /** Instructions per run() slice (default 20000). */
  sliceInstructions?: number;
  /** Translation-cache size per engine in MiB (default 32). */
  tcgBufferMiB?: number;
  /** Physical address bits mapped for MMIO around RAM (default 40). */
  physBits?: number;
}

export class SoftwareBackend implements CpuBackend {
  readonly name = 'software' as const;
  readonly lib: UnicornLib;
  readonly description: string;
  readonly ram: RamRegion[] = [];
  readonly vcpus: UnicornVcpu[] = [];
  readonly sliceInstructions: number;
  readonly tcgBufferBytes: number;
  readonly physLimit: bigint;
  /** Kept alive for the engines' lifetime (koffi callbacks are freed on unregister). */
  readonly callbacks: unknown[] = [];
  /** Cross-engine maintenance performed (boot summary, bench). */
  readonly stats = { tbFlushes: 0, tlbFlushes: 0, pageInvalidations: 0 };

  constructor(readonly options: SoftwareBackendOptions) {
    this.lib = loadUnicorn();
    const v = this.lib.version;
    this.description = `unicorn ${v.major}.${v.minor}.${v.patch} (${this.lib.path})`;
    this.sliceInstructions = options.sliceInstructions ?? 20_000;
    this.tcgBufferBytes = (options.tcgBufferMiB ?? 32) * 1024 * 1024;
    this.physLimit = 1n << BigInt(options.physBits ?? 40);
  }

  mapRam(region: RamRegion): void {
    if (this.vcpus.length) throw new HostError('software backend: map RAM before creating vCPUs');
    if (region.base % 4096n !== 0n || region.size % 4096n !== 0n) {
      throw new HostError(`software backend: RAM region 0x${region.base.toString(16)}+0x${region.size.toString(16)} is not 4 KiB aligned`);
    }
    this.ram.push(region);
    this.ram.sort((a, b) => (a.base < b.base ? -1 : 1));
  }

  createVcpu(index: number, mpidr: bigint, identity?: VcpuIdentity): UnicornVcpu {
    const v = new UnicornVcpu(this, index, mpidr, identity?.midr ?? null);
    this.vcpus.push(v);
    return v;
  }

  /** The RAM region holding `pa`, if any. */
  ramAt(pa: bigint): RamRegion | undefined {
    for (const r of this.ram) if (pa >= r.base && pa < r.base + r.size) return r;
    return undefined;
  }

  readPhys64(pa: bigint): bigint | null {
    const r = this.ramAt(pa);
    if (!r || pa + 8n > r.base + r.size) return null;
    const off = Number(pa - r.base);
    const b = r.bytes;
    return BigInt(b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16)) + (BigInt(b[off + 3]!) << 24n) +
      (BigInt(b[off + 4]! | (b[off + 5]! << 8) | (b[off + 6]! << 16)) << 32n) + (BigInt(b[off + 7]!) << 56n);
  }

  readPhys32(pa: bigint): number | null {
    const r = this.ramAt(pa);
    if (!r || pa + 4n > r.base + r.size) return null;
    const off = Number(pa - r.base);
    const b = r.bytes;
    return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
  }

  invalidateCode(base: bigint, size: bigint): void {
    for (const v of this.vcpus) v.codeChanged(base, size);
  }

  /** A vCPU invalidated the instruction cache for [pa, pa + size): the others drop those
   *  translations (all of them when `pa` is null: IC IALLUIS). */
  codeChangedBy(from: UnicornVcpu, pa: bigint | null, size = 0n): void {
    for (const v of this.vcpus) {
      if (v === from) continue;
      if (pa === null) v.needTbFlush = true;
      else v.codeChanged(pa, size);
    }
  }

  /** A vCPU executed a broadcast TLBI: the others drop their TLBs. */
  tlbFlushedBy(from: UnicornVcpu): void {
    for (const v of this.vcpus) if (v !== from) v.needTlbFlush = true;
  }

  ctl(uc: unknown, control: number, ...args: unknown[]): void {
    check(this.lib, this.lib.uc_ctl(uc, control, ...args) as number, `uc_ctl 0x${control.toString(16)}`);
  }

  register(fn: (...a: never[]) => unknown, proto: unknown): unknown {
    const cb = koffi.register(fn, koffi.pointer(proto as TypeObject));
    this.callbacks.push(cb);
    return cb;
  }

  destroy(): void {
    for (const v of this.vcpus) v.close();
    for (const cb of this.callbacks) koffi.unregister(cb as bigint);
    this.callbacks.length = 0;
    this.vcpus.length = 0;
  }
}
