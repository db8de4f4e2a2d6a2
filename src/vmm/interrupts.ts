import type { IrqLine } from './device.js';

// Per-vCPU interrupt inputs. IRQ comes from the AIC; FIQ is the OR of several CPU-local sources on
// M1 (the timers and FastIPI; PMCs are not modelled), so each source gets its own line.

export interface CpuInterruptSink {
  setIrq(cpu: number, level: boolean): void;
  setFiq(cpu: number, level: boolean): void;
}

export class CpuLines {
  private readonly fiqBits: number[];
  private readonly irqLevel: boolean[];
  private readonly sourceCount: number[];
  /** Rising edges of each vCPU's IRQ or FIQ input (the run loop hands the CPU over on them). */
  readonly rises: number[];
  /** Called on every IRQ/FIQ level change (for --trace irq). */
  onChange: ((cpu: number, kind: 'irq' | 'fiq', level: boolean, source: string) => void) | null = null;

  constructor(readonly cpus: number, private sink: CpuInterruptSink) {
    this.fiqBits = new Array<number>(cpus).fill(0);
    this.irqLevel = new Array<boolean>(cpus).fill(false);
    this.sourceCount = new Array<number>(cpus).fill(0);
    this.rises = new Array<number>(cpus).fill(0);
  }

  setSink(sink: CpuInterruptSink): void {
    this.sink = sink;
    for (let c = 0; c < this.cpus; c++) {
      sink.setIrq(c, this.irqLevel[c]!);
      sink.setFiq(c, this.fiqBits[c] !== 0);
    }
  }

  irq(cpu: number): IrqLine {
    return {
      set: (level) => {
        if (this.irqLevel[cpu] === level) return;
        this.irqLevel[cpu] = level;
        if (level) this.rises[cpu]!++;
        this.onChange?.(cpu, 'irq', level, 'aic');
        this.sink.setIrq(cpu, level);
      },
    };
  }

  /** A new FIQ source feeding `cpu` (timer, fast-ipi...). */
  fiqSource(cpu: number, name: string): IrqLine {
    const n = this.sourceCount[cpu]!++;
    if (n >= 31) throw new Error(`cpu ${cpu}: too many FIQ sources`);
    const bit = 1 << n;
    return {
      set: (level) => {
        const before = this.fiqBits[cpu]!;
        const after = level ? before | bit : before & ~bit;
        if (after === before) return;
        this.fiqBits[cpu] = after;
        if (before === 0 && after !== 0) this.rises[cpu]!++;
        this.onChange?.(cpu, 'fiq', level, name);
        if ((before === 0) !== (after === 0)) this.sink.setFiq(cpu, after !== 0);
      },
    };
  }

  irqPending(cpu: number): boolean {
    return this.irqLevel[cpu]!;
  }

  fiqPending(cpu: number): boolean {
    return this.fiqBits[cpu] !== 0;
  }
}
