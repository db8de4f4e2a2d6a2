import koffi from 'koffi';
import { HostError } from '../../../errors.js';
import type { CpuBackend, RamRegion, SharedDeviceState, VcpuIdentity } from '../backend.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE, lastError, libc, mapMemory } from '../../../host/libc.js';
import { requireKvm, type KvmCaps } from './probe.js';
import { CAP, IOCTL, SIZEOF, irqLineNumber } from './uapi.js';
import { CTL_WORDS, KICK_SIGNAL, MAX_VCPUS } from './protocol.js';
import { KvmVcpu } from './vcpu.js';

// The KVM CPU backend (aarch64 Linux hosts): one VM without an in-kernel irqchip, guest RAM in one
// anonymous mapping shared by KVM's memory slot and the devices, one vCPU fd + worker thread per
// vCPU. It serves the same machine model as the software backend; only the CPU differs. It needs
// host-patch/kvm-impdef-sysreg-exits (every M1 guest touches Apple IMPDEF system registers) and
// says so on a stock kernel (probe.ts).

interface Mapping {
  ptr: unknown;
  addr: bigint;
  size: number;
  bytes: Uint8Array;
}

const noop = () => {};

export class KvmBackend implements CpuBackend {
  readonly name = 'kvm' as const;
  readonly countsInstructions = false;
  readonly description: string;
  readonly caps: KvmCaps;
  readonly pageSize: number;
  readonly bell = new Int32Array(new SharedArrayBuffer(4));
  readonly vcpus: KvmVcpu[] = [];
  readonly ram: Array<RamRegion & { addr: bigint }> = [];
  private readonly mappings: Mapping[] = [];
  private kvmFd = -1;
  private vm = -1;
  runSize = 0;
  preferredTarget = Buffer.alloc(SIZEOF.kvm_vcpu_init);
  workerError: string | null = null;
  /** The devices' shared state (Machine, before the vCPUs are created). */
  deviceState: SharedDeviceState | null = null;
  /** Every vCPU's control words (protocol.ts), vCPU i at i * CTL_WORDS. */
  readonly ctl = new Int32Array(new SharedArrayBuffer(MAX_VCPUS * CTL_WORDS * 4));
  /** The vCPUs' FIQ lines follow their FastIPI-pending words (fiq-line.ts), so the machine routes
   *  FastIPI through ipiChanged() instead of an interrupt line of its own. */
  readonly fastIpiInVcpu = true;
  private readonly irqBuf = Buffer.alloc(SIZEOF.kvm_irq_level);

  constructor() {
    const p = requireKvm();
    this.caps = p.caps;
    this.pageSize = p.pageSize;
    this.description = `KVM (${p.arch}, ${p.pageSize / 1024} KiB pages, IMPDEF sysreg exits${p.caps.writableImpIdRegs ? ', writable MIDR' : ''})`;
  }

  error(what: string): HostError {
    return new HostError(`KVM backend: ${what} failed: ${lastError()}`);
  }

  get vmFd(): number {
    if (this.vm >= 0) return this.vm;
    const c = libc();
    this.kvmFd = c.open('/dev/kvm', O_RDWR | O_CLOEXEC) as number;
    if (this.kvmFd < 0) throw this.error('open /dev/kvm');
    // Default IPA size (40 bits) unless the host offers less; the t8103 layout fits in 36 bits.
    const ipa = this.caps.ipaSize > 0 ? Math.min(this.caps.ipaSize, 40) : 0;
    const vm = c.ioctlInt(this.kvmFd, IOCTL.KVM_CREATE_VM, ipa === 40 ? 0 : ipa) as number;
    if (vm < 0) throw this.error('KVM_CREATE_VM');
    this.vm = vm;
    this.enableCap(CAP.KVM_CAP_ARM_IMPDEF_SYSREG_EXITS, 'KVM_CAP_ARM_IMPDEF_SYSREG_EXITS');
    if (this.caps.nisvToUser) this.enableCap(CAP.KVM_CAP_ARM_NISV_TO_USER, 'KVM_CAP_ARM_NISV_TO_USER');
    if (this.caps.writableImpIdRegs) this.enableCap(CAP.KVM_CAP_ARM_WRITABLE_IMP_ID_REGS, 'KVM_CAP_ARM_WRITABLE_IMP_ID_REGS');
    this.runSize = c.ioctlInt(this.kvmFd, IOCTL.KVM_GET_VCPU_MMAP_SIZE, 0) as number;
    if (this.runSize <= 0) throw this.error('KVM_GET_VCPU_MMAP_SIZE');
    if ((c.ioctlPtr(vm, IOCTL.KVM_ARM_PREFERRED_TARGET, this.preferredTarget) as number) < 0) throw this.error('KVM_ARM_PREFERRED_TARGET');
    // The kick signal interrupts KVM_RUN (EINTR); a handler must exist or the signal kills us.
    process.on(KICK_SIGNAL, noop);
    return vm;
  }

  private enableCap(cap: number, name: string): void {
    const b = Buffer.alloc(SIZEOF.kvm_enable_cap);
    b.writeUInt32LE(cap, 0);
    if ((libc().ioctlPtr(this.vm, IOCTL.KVM_ENABLE_CAP, b) as number) < 0) throw this.error(`KVM_ENABLE_CAP ${name}`);
  }

  /** Guest RAM: page-aligned anonymous memory that KVM maps into the guest and devices read. */
  allocateRam(size: bigint): Uint8Array {
    const n = Number(size);
    const ptr = mapMemory(n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
    if (!ptr) throw this.error(`mmap of ${n} bytes of guest RAM`);
    const bytes = new Uint8Array(koffi.view(ptr, n));
    this.mappings.push({ ptr, addr: koffi.address(ptr), size: n, bytes });
    return bytes;
  }

  mapRam(region: RamRegion): void {
    if (this.vcpus.length) throw new HostError('KVM backend: map RAM before creating vCPUs');
    const page = BigInt(this.pageSize);
    if (region.base % page !== 0n || region.size % page !== 0n) {
      throw new HostError(`KVM backend: RAM 0x${region.base.toString(16)}+0x${region.size.toString(16)} is not aligned to the host's ${this.pageSize / 1024} KiB pages`);
    }
    const m = this.mappings.find((x) => x.bytes.buffer === region.bytes.buffer);
    if (!m) throw new HostError('KVM backend: guest RAM must come from allocateRam() (KVM maps page-aligned host memory)');
    const addr = m.addr + BigInt(region.bytes.byteOffset);
    const b = Buffer.alloc(SIZEOF.kvm_userspace_memory_region);
    b.writeUInt32LE(this.ram.length, 0); // slot
    b.writeUInt32LE(0, 4); // flags
    b.writeBigUInt64LE(region.base, 8);
    b.writeBigUInt64LE(region.size, 16);
    b.writeBigUInt64LE(addr, 24);
    if ((libc().ioctlPtr(this.vmFd, IOCTL.KVM_SET_USER_MEMORY_REGION, b) as number) < 0) throw this.error('KVM_SET_USER_MEMORY_REGION');
    this.ram.push({ ...region, addr });
  }

  shareDeviceState(state: SharedDeviceState): void {
    this.deviceState = state;
  }

  /** What the vCPU threads serve themselves (null: M1PREP_KVM_HOT_EXITS=0, every exit goes to
   *  the main thread). */
  get hotState(): SharedDeviceState | null {
    return process.env.M1PREP_KVM_HOT_EXITS === '0' ? null : this.deviceState;
  }

  createVcpu(index: number, mpidr: bigint, identity?: VcpuIdentity): KvmVcpu {
    if (index >= MAX_VCPUS) throw new HostError(`KVM backend: at most ${MAX_VCPUS} vCPUs`);
    const v = new KvmVcpu(this, index, mpidr, identity?.midr ?? null);
    this.vcpus.push(v);
    return v;
  }

  mapRunPage(fd: number): unknown {
    const p = mapMemory(this.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    if (!p) throw this.error('mmap of the kvm_run page');
    return p;
  }

  unmapRunPage(p: unknown): void {
    libc().munmap(p, this.runSize);
  }

  irqLine(vcpu: number, line: number, level: boolean): void {
    this.irqBuf.writeUInt32LE(irqLineNumber(vcpu, line), 0);
    this.irqBuf.writeUInt32LE(level ? 1 : 0, 4);
    if ((libc().ioctlPtr(this.vmFd, IOCTL.KVM_IRQ_LINE, this.irqBuf) as number) < 0) throw this.error(`KVM_IRQ_LINE vcpu ${vcpu}`);
  }

  private ramAt(pa: bigint, len: number): { r: RamRegion; off: number } | null {
    for (const r of this.ram) if (pa >= r.base && pa + BigInt(len) <= r.base + r.size) return { r, off: Number(pa - r.base) };
    return null;
  }

  readPhys64(pa: bigint): bigint | null {
    const h = this.ramAt(pa, 8);
    return h ? new DataView(h.r.bytes.buffer, h.r.bytes.byteOffset).getBigUint64(h.off, true) : null;
  }

  readPhys32(pa: bigint): number | null {
    const h = this.ramAt(pa, 4);
    return h ? new DataView(h.r.bytes.buffer, h.r.bytes.byteOffset).getUint32(h.off, true) : null;
  }

  /** KVM keeps the guest's instruction cache coherent when it maps a page; nothing to drop here. */
  invalidateCode(): void {}

  destroy(): void {
    const errors: string[] = [];
    for (const v of this.vcpus) {
      try {
        v.close();
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.vcpus.length = 0;
    const c = libc();
    if (this.vm >= 0) c.close(this.vm);
    if (this.kvmFd >= 0) c.close(this.kvmFd);
    this.vm = this.kvmFd = -1;
    for (const m of this.mappings) c.munmap(m.ptr, m.size);
    this.mappings.length = 0;
    this.ram.length = 0;
    process.off(KICK_SIGNAL, noop);
    if (errors.length) throw new HostError(`KVM backend teardown: ${errors.join('; ')}`);
  }
}
