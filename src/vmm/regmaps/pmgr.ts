import type { RegMap } from '../regmap.js';

// Apple PMGR (apple,t8103-pmgr). Power-state registers: Linux drivers/soc/apple/
// apple-pmgr-pwrstate.c (target state in bits 3:0, actual state in bits 7:4). CPU start block:
// m1n1 src/smp.c (PMGR base + 0x54000).

export const PS_TARGET = 0xfn;
export const PS_ACTUAL_SHIFT = 4n;
export const PS_ACTIVE = 0xfn;
export const PMGR_PWRSTATE_WINDOW = 0x54000;
export const CPU_START_OFFSET = 0x54000;

export const pmgrRegs: RegMap = {
  compatible: 'apple,t8103-pmgr',
  source: 'Linux drivers/soc/apple/apple-pmgr-pwrstate.c',
  regs: [
    { name: 'PWRSTATE', offset: 0, width: 4, access: 'rw', count: PMGR_PWRSTATE_WINDOW / 8, stride: 8, reset: 0xffn, doc: 'one per power domain at its reg offset; actual state mirrors the target state' },
  ],
};

export const cpuStartRegs: RegMap = {
  compatible: 'apple,t8103-pmgr cpu-start',
  source: 'm1n1 src/smp.c',
  regs: [
    { name: 'CPU_START_SYS', offset: 0x4, width: 4, access: 'rw', doc: 'bit 4*cluster+core: power the core' },
    { name: 'CPU_START_CLUSTER', offset: 0x8, width: 4, access: 'wo', count: 2, doc: 'bit core: start the core of this cluster at its RVBAR' },
  ],
};

export const cpuImplRegs: RegMap = {
  compatible: 'apple,cpu-impl-reg',
  source: 'm1n1 src/smp.c (RVBAR at cpu-impl-reg + 0)',
  regs: [
    { name: 'RVBAR', offset: 0x0, width: 8, access: 'rw', doc: 'reset vector of the core (bits 63:2; bit 0 locks it)' },
  ],
};
