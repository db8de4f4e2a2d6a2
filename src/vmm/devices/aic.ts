import type { AccessSize, IrqLine, MmioDevice } from '../device.js';
import { findReg } from '../regmap.js';
import {
  AIC_EVENT_IPI_OTHER, AIC_EVENT_IPI_SELF, AIC_EVENT_TYPE_IPI, AIC_EVENT_TYPE_IRQ, AIC_IPI_OTHER, AIC_IPI_SELF,
  AIC_MAX_IRQ, aicRegs,
} from '../regmaps/aic.js';

// AIC v1 as on t8103: level-triggered hardware inputs, software-set bits, per-IRQ masks and CPU
// targets, the per-CPU EVENT register (reading it masks the reported IRQ until MASK_CLR), WHOAMI,
// and the MMIO IPIs (Linux on t8103 uses FastIPI through system registers instead; see
// src/vmm/sysregs/m1.ts). One IRQ output per CPU.

const WORDS = AIC_MAX_IRQ / 32;

export class Aic implements MmioDevice {
  readonly name: string;
  readonly regs = aicRegs;
  private readonly hw = new Uint32Array(WORDS);
  private readonly sw = new Uint32Array(WORDS);
  private readonly mask = new Uint32Array(WORDS);
  private readonly target = new Uint32Array(AIC_MAX_IRQ);
  private config = 0;
  /** Per CPU: pending IPI flags (AIC_IPI_OTHER | AIC_IPI_SELF) and their masks. */
  private readonly ipiFlag: bigint[];
  private readonly ipiMask: bigint[];
  private readonly levels: boolean[];

  constructor(readonly nIrq: number, private readonly cpuIrq: readonly IrqLine[], name = 'aic') {
    this.name = name;
    if (nIrq > AIC_MAX_IRQ) throw new RangeError(`aic: ${nIrq} IRQs exceed ${AIC_MAX_IRQ}`);
    this.ipiFlag = cpuIrq.map(() => 0n);
    this.ipiMask = cpuIrq.map(() => 0n);
    this.levels = cpuIrq.map(() => false);
    this.reset();
  }

  get cpus(): number {
    return this.cpuIrq.length;
  }

  /** The hardware input for IRQ `n` (device interrupt lines connect here). */
  input(n: number): IrqLine {
    if (n < 0 || n >= this.nIrq) throw new RangeError(`aic: no IRQ ${n} (the AIC has ${this.nIrq})`);
    const w = n >> 5, bit = 1 << (n & 31);
    return {
      set: (level) => {
        const before = this.hw[w]!;
        this.hw[w] = level ? before | bit : before & ~bit;
        if (this.hw[w] !== before) this.update();
      },
    };
  }

  read(offset: bigint, _size: AccessSize, cpu: number): bigint {
    const off = Number(offset);
    const hit = findReg(this.regs, off);
    if (!hit) return 0n;
    const i = hit.index;
    switch (hit.def.name) {
      case 'INFO': return BigInt(this.nIrq);
      case 'CONFIG': return BigInt(this.config);
      case 'WHOAMI': return BigInt(cpu);
      case 'EVENT': return this.takeEvent(cpu);
      case 'TARGET_CPU': return BigInt(this.target[i]!);
      case 'SW_SET': case 'SW_CLR': return BigInt(this.sw[i]!);
      case 'MASK_SET': case 'MASK_CLR': return BigInt(this.mask[i]!);
      case 'HW_STATE': return BigInt(this.hw[i]!);
      default: return 0n;
    }
  }

  write(offset: bigint, _size: AccessSize, value: bigint, cpu: number): void {
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return;
    const i = hit.index;
    const v = Number(value & 0xffffffffn) >>> 0;
    switch (hit.def.name) {
      case 'CONFIG': this.config = v; return;
      case 'TARGET_CPU': this.target[i] = v; break;
      case 'SW_SET': this.sw[i] = (this.sw[i]! | v) >>> 0; break;
      case 'SW_CLR': this.sw[i] = (this.sw[i]! & ~v) >>> 0; break;
      case 'MASK_SET': this.mask[i] = (this.mask[i]! | v) >>> 0; break;
      case 'MASK_CLR': this.mask[i] = (this.mask[i]! & ~v) >>> 0; break;
      case 'IPI_SEND': this.sendIpi(cpu, value); break;
      case 'IPI_ACK': this.ipiFlag[cpu] = this.ipiFlag[cpu]! & ~value; break;
      case 'IPI_MASK_SET': this.ipiMask[cpu] = this.ipiMask[cpu]! | value; break;
      case 'IPI_MASK_CLR': this.ipiMask[cpu] = this.ipiMask[cpu]! & ~value; break;
      default: return;
    }
    this.update();
  }

  private sendIpi(from: number, value: bigint): void {
    for (let c = 0; c < this.cpus; c++) {
      if (value & (1n << BigInt(c))) this.ipiFlag[c] = this.ipiFlag[c]! | AIC_IPI_OTHER;
    }
    if (value & AIC_IPI_SELF) this.ipiFlag[from] = this.ipiFlag[from]! | AIC_IPI_SELF;
  }

  /** Lowest pending, unmasked IRQ targeted at `cpu`, or -1. */
  private firstPending(cpu: number): number {
    const cpuBit = 1 << cpu;
    for (let w = 0; w < WORDS; w++) {
      let bits = (this.hw[w]! | this.sw[w]!) & ~this.mask[w]!;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        const n = w * 32 + b;
        if (n >= this.nIrq) return -1;
        if (this.target[n]! & cpuBit) return n;
        bits &= bits - 1;
      }
    }
    return -1;
  }

  private pendingIpi(cpu: number): bigint {
    return this.ipiFlag[cpu]! & ~this.ipiMask[cpu]!;
  }

  private takeEvent(cpu: number): bigint {
    const n = this.firstPending(cpu);
    if (n >= 0) {
      this.mask[n >> 5] = (this.mask[n >> 5]! | (1 << (n & 31))) >>> 0;
      this.update();
      return BigInt((AIC_EVENT_TYPE_IRQ << 16) | n);
    }
    const ipi = this.pendingIpi(cpu);
    if (ipi !== 0n) {
      // Reporting an IPI masks it; the guest acks (IPI_ACK) and unmasks (IPI_MASK_CLR).
      const which = ipi & AIC_IPI_OTHER ? AIC_IPI_OTHER : AIC_IPI_SELF;
      this.ipiMask[cpu] = this.ipiMask[cpu]! | which;
      this.update();
      return BigInt((AIC_EVENT_TYPE_IPI << 16) | (which === AIC_IPI_OTHER ? AIC_EVENT_IPI_OTHER : AIC_EVENT_IPI_SELF));
    }
    return 0n;
  }

  private update(): void {
    for (let c = 0; c < this.cpus; c++) {
      const level = this.firstPending(c) >= 0 || this.pendingIpi(c) !== 0n;
      if (level !== this.levels[c]) {
        this.levels[c] = level;
        this.cpuIrq[c]!.set(level);
      }
    }
  }

  reset(): void {
    this.sw.fill(0);
    this.mask.fill(0xffffffff);
    this.target.fill(0);
    this.config = 0;
    this.ipiFlag.fill(0n);
    this.ipiMask.fill(0n);
    this.update();
  }
}
