import { closeSync, openSync, writeSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { MmioDevice } from './device.js';
import type { Machine } from './machine.js';
import { regName, type RegMap } from './regmap.js';
import type { RunLoop } from './run-loop.js';

// --trace mmio,sysreg,irq,exc: one line per event, register names from the devices' maps.

export const TRACE_KINDS = ['mmio', 'sysreg', 'irq', 'exc'] as const;
export type TraceKind = (typeof TRACE_KINDS)[number];

export function parseTraceKinds(spec: string | undefined): Set<TraceKind> {
  const out = new Set<TraceKind>();
  if (!spec) return out;
  for (const k of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(TRACE_KINDS as readonly string[]).includes(k)) throw new UsageError(`--trace ${k}: choose from ${TRACE_KINDS.join(', ')}`);
    out.add(k as TraceKind);
  }
  return out;
}

const hex = (v: bigint) => '0x' + v.toString(16);

export class Tracer {
  private readonly fd: number;
  lines = 0;

  constructor(file: string | undefined) {
    this.fd = file ? openSync(file, 'w') : 2;
  }

  line(text: string): void {
    this.lines++;
    writeSync(this.fd, text + '\n');
  }

  attach(m: Machine, loop: RunLoop, kinds: Set<TraceKind>): void {
    // A traced access must reach the main thread: no hot paths for what is traced.
    if (kinds.has('mmio')) m.uart.shared.enabled = false;
    if (kinds.has('sysreg')) m.sysregs.shared.enabled = false;
    // FastIPI served in a vCPU thread would bypass the irq trace.
    if (kinds.has('irq')) m.sysregs.shared.ipiHot = false;
    if (kinds.has('mmio')) {
      m.bus.onAccess = (e) => {
        const map = e.device ? m.bus.find(e.addr) : undefined;
        const regs = (map?.device as MmioDevice & { regs?: RegMap } | undefined)?.regs;
        const reg = map && regs ? regName(regs, Number(e.addr - map.base)) : '';
        this.line(`mmio cpu${e.cpu} ${e.kind === 'read' ? 'R' : 'W'}${e.size * 8} ${hex(e.addr)} ${e.device ?? '(unmapped)'}${reg ? ' ' + reg : ''} = ${hex(e.value)}`);
      };
    }
    if (kinds.has('sysreg')) {
      loop.trace.sysreg = (cpu, name, write, value) => this.line(`sysreg cpu${cpu} ${write ? 'MSR' : 'MRS'} ${name} = ${hex(value)}`);
      m.sysregs.onUnknown = (name) => this.line(`sysreg unknown IMPDEF register ${name} (reads as zero, writes ignored)`);
    }
    if (kinds.has('irq')) {
      m.lines.onChange = (cpu, kind, level, source) => this.line(`irq cpu${cpu} ${kind.toUpperCase()} ${level ? 'raise' : 'lower'} (${source})`);
    }
    if (kinds.has('exc')) {
      for (const v of m.vcpus) {
        const t = v as { onDeliver?: (kind: string, esr: bigint, elr: bigint, far: bigint | null) => void };
        t.onDeliver = (kind, esr, elr, far) => this.line(`exc cpu${v.index} ${kind} ESR=${hex(esr)} ELR=${hex(elr)}${far !== null ? ' FAR=' + hex(far) : ''}`);
      }
    }
  }

  close(): void {
    if (this.fd !== 2) closeSync(this.fd);
  }
}
