import { readFileSync } from 'node:fs';
import { defaultLayoutPath, loadLayout, withRamSize, type VmLayout } from '../../../src/dtb/layout.js';
import '../../../src/vmm/cpu/unicorn/register.js';
import { Machine } from '../../../src/vmm/machine.js';
import { RunLoop } from '../../../src/vmm/run-loop.js';
import { assemble } from './asm.js';

export function testLayout(ramMiB = 1024): VmLayout {
  const l = loadLayout(readFileSync(defaultLayoutPath(), 'utf8'), defaultLayoutPath());
  return withRamSize(l, BigInt(ramMiB) << 20n);
}

/** Boot an assembled guest at the start of RAM on the software backend. Symbols: UART, AIC, PMGR, IMPL1 base addresses are passed as assembler defines. */
export function guestMachine(source: string, cpus = 1) {
  const layout = testLayout();
  let text = '';
  const m = new Machine(layout, { layout, cpus, backend: 'software', console: (b) => { text += Buffer.from(b).toString('latin1'); } });
  const defs = [
    `.equ RAM, 0x${layout.ram.base.toString(16)}`,
    `.equ UART, 0x${layout.uart0.base.toString(16)}`,
    `.equ AIC, 0x${layout.aic.base.toString(16)}`,
    `.equ PMGR, 0x${layout.pmgr.base.toString(16)}`,
    `.equ CPUSTART, 0x${layout.pmgr.cpuStart.base.toString(16)}`,
    `.equ IMPL1, 0x${layout.cpus[1]!.implReg.base.toString(16)}`,
    `.equ UART_IRQ, ${layout.uart0.irq}`,
  ].join('\n');
  const bin = assemble(`${defs}\n${source}`, layout.ram.base);
  m.load(layout.ram.base, bin);
  m.vcpus[0]!.start(layout.ram.base, 0n);
  const loop = new RunLoop(m);
  return { m, loop, layout, console: () => text };
}
