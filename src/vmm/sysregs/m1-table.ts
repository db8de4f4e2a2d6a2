// Apple M1 (t8103) CPU identity and IMPLEMENTATION DEFINED system registers, as data.
// Encodings: Linux 6.1 (arch/arm64/include/asm/apple_m1_pmu.h, drivers/irqchip/irq-apple-aic.c)
// and m1n1 (src/cpu_regs.h). Behaviour kinds:
//   store      reads back what was written (HID/chicken bits, PMU config, SPRR/GXF tolerated)
//   zero       reads as zero, writes ignored (error status registers)
//   ipi-local / ipi-global / ipi-sr / ipi-cr: FastIPI (see M1SysregFile)
//   counter    the running system counter (CNTVCT alias)

export type SysregBehaviour = 'store' | 'zero' | 'ipi-local' | 'ipi-global' | 'ipi-sr' | 'ipi-cr' | 'counter';

export interface SysregDef {
  name: string;
  enc: string;
  kind: SysregBehaviour;
  reset?: bigint;
  /** Only some registers are meaningful outside a macOS guest; say why we carry them. */
  note?: string;
}

export const M1_IMPDEF: readonly SysregDef[] = [
  { name: 'HID0', enc: 's3_0_c15_c0_0', kind: 'store' },
  { name: 'EHID0', enc: 's3_0_c15_c0_1', kind: 'store' },
  { name: 'HID1', enc: 's3_0_c15_c1_0', kind: 'store' },
  { name: 'EHID1', enc: 's3_0_c15_c1_1', kind: 'store' },
  { name: 'EHID20', enc: 's3_0_c15_c1_2', kind: 'store' },
  { name: 'HID21', enc: 's3_0_c15_c1_3', kind: 'store' },
  { name: 'HID2', enc: 's3_0_c15_c2_0', kind: 'store' },
  { name: 'EHID2', enc: 's3_0_c15_c2_1', kind: 'store' },
  { name: 'HID3', enc: 's3_0_c15_c3_0', kind: 'store' },
  { name: 'EHID3', enc: 's3_0_c15_c3_1', kind: 'store' },
  { name: 'HID4', enc: 's3_0_c15_c4_0', kind: 'store' },
  { name: 'EHID4', enc: 's3_0_c15_c4_1', kind: 'store' },
  { name: 'HID5', enc: 's3_0_c15_c5_0', kind: 'store' },
  { name: 'EHID5', enc: 's3_0_c15_c5_1', kind: 'store' },
  { name: 'HID6', enc: 's3_0_c15_c6_0', kind: 'store' },
  { name: 'HID7', enc: 's3_0_c15_c7_0', kind: 'store' },
  { name: 'EHID7', enc: 's3_0_c15_c7_1', kind: 'store' },
  { name: 'HID8', enc: 's3_0_c15_c8_0', kind: 'store' },
  { name: 'HID9', enc: 's3_0_c15_c9_0', kind: 'store' },
  { name: 'EHID9', enc: 's3_0_c15_c9_1', kind: 'store' },
  { name: 'HID10', enc: 's3_0_c15_c10_0', kind: 'store' },
  { name: 'EHID10', enc: 's3_0_c15_c10_1', kind: 'store' },
  { name: 'HID11', enc: 's3_0_c15_c11_0', kind: 'store' },
  { name: 'EHID11', enc: 's3_0_c15_c11_1', kind: 'store' },
  { name: 'HID18', enc: 's3_0_c15_c11_2', kind: 'store' },
  { name: 'HID13', enc: 's3_0_c15_c14_0', kind: 'store' },
  { name: 'HID14', enc: 's3_0_c15_c15_0', kind: 'store' },
  { name: 'HID16', enc: 's3_0_c15_c15_2', kind: 'store' },
  { name: 'HID17', enc: 's3_0_c15_c15_5', kind: 'store' },
  { name: 'PMCR0', enc: 's3_1_c15_c0_0', kind: 'store', note: 'PMU control and the PMC FIQ mode (IMODE bits 10:8, IACT bit 11); Linux reads it on every FIQ' },
  { name: 'PMCR1', enc: 's3_1_c15_c1_0', kind: 'store' },
  { name: 'PMCR2', enc: 's3_1_c15_c2_0', kind: 'store' },
  { name: 'PMCR3', enc: 's3_1_c15_c3_0', kind: 'store' },
  { name: 'PMCR4', enc: 's3_1_c15_c4_0', kind: 'store' },
  { name: 'PMESR0', enc: 's3_1_c15_c5_0', kind: 'store' },
  { name: 'PMESR1', enc: 's3_1_c15_c6_0', kind: 'store' },
  { name: 'PMSR', enc: 's3_1_c15_c13_0', kind: 'zero', note: 'PMC overflow status: no counter ever overflows here' },
  { name: 'PMC0', enc: 's3_2_c15_c0_0', kind: 'store' },
  { name: 'PMC1', enc: 's3_2_c15_c1_0', kind: 'store' },
  { name: 'PMC2', enc: 's3_2_c15_c2_0', kind: 'store' },
  { name: 'PMC3', enc: 's3_2_c15_c3_0', kind: 'store' },
  { name: 'PMC4', enc: 's3_2_c15_c4_0', kind: 'store' },
  { name: 'PMC5', enc: 's3_2_c15_c5_0', kind: 'store' },
  { name: 'PMC6', enc: 's3_2_c15_c6_0', kind: 'store' },
  { name: 'PMC7', enc: 's3_2_c15_c7_0', kind: 'store' },
  { name: 'PMC8', enc: 's3_2_c15_c9_0', kind: 'store' },
  { name: 'PMC9', enc: 's3_2_c15_c10_0', kind: 'store' },
  { name: 'LSU_ERR_STS', enc: 's3_3_c15_c0_0', kind: 'zero' },
  { name: 'E_LSU_ERR_STS', enc: 's3_3_c15_c2_0', kind: 'zero' },
  { name: 'L2C_ERR_STS', enc: 's3_3_c15_c8_0', kind: 'zero' },
  { name: 'L2C_ERR_ADR', enc: 's3_3_c15_c9_0', kind: 'zero' },
  { name: 'L2C_ERR_INF', enc: 's3_3_c15_c10_0', kind: 'zero' },
  { name: 'FED_ERR_STS', enc: 's3_4_c15_c0_0', kind: 'zero' },
  { name: 'E_FED_ERR_STS', enc: 's3_4_c15_c0_2', kind: 'zero' },
  { name: 'CNTVCT_ALIAS_EL0', enc: 's3_4_c15_c10_6', kind: 'counter' },
  { name: 'IPI_RR_LOCAL_EL1', enc: 's3_5_c15_c0_0', kind: 'ipi-local', note: 'FastIPI to a core of this cluster: target core in bits 7:0' },
  { name: 'IPI_RR_GLOBAL_EL1', enc: 's3_5_c15_c0_1', kind: 'ipi-global', note: 'FastIPI to another cluster: core in bits 7:0, cluster in bits 23:16' },
  { name: 'IPI_SR_EL1', enc: 's3_5_c15_c1_1', kind: 'ipi-sr', note: 'bit 0 pending; write 1 to clear' },
  { name: 'VM_TMR_FIQ_ENA_EL2', enc: 's3_5_c15_c1_3', kind: 'store' },
  { name: 'IPI_CR_EL1', enc: 's3_5_c15_c3_1', kind: 'ipi-cr', note: 'deferred-IPI countdown; stored' },
  { name: 'ACC_CFG', enc: 's3_5_c15_c4_0', kind: 'store' },
  { name: 'CYC_OVRD', enc: 's3_5_c15_c5_0', kind: 'store' },
  { name: 'MMU_ERR_STS', enc: 's3_6_c15_c0_0', kind: 'zero' },
  { name: 'SPRR_CONFIG_EL1', enc: 's3_6_c15_c1_0', kind: 'store', note: 'SPRR tolerated: stored, no permission remapping' },
  { name: 'GXF_CONFIG_EL1', enc: 's3_6_c15_c1_2', kind: 'store', note: 'GXF tolerated: stored, no guarded mode' },
  { name: 'SPRR_PERM_EL0', enc: 's3_6_c15_c1_5', kind: 'store' },
  { name: 'SPRR_PERM_EL1', enc: 's3_6_c15_c1_6', kind: 'store' },
  { name: 'E_MMU_ERR_STS', enc: 's3_6_c15_c2_0', kind: 'zero' },
  { name: 'GXF_STATUS_EL1', enc: 's3_6_c15_c8_0', kind: 'zero' },
  { name: 'GXF_ENTER_EL1', enc: 's3_6_c15_c8_1', kind: 'store' },
  { name: 'GXF_ABORT_EL1', enc: 's3_6_c15_c8_2', kind: 'store' },
  { name: 'VBAR_GL12', enc: 's3_6_c15_c9_2', kind: 'store' },
  { name: 'SP_GL12', enc: 's3_6_c15_c10_0', kind: 'store' },
  { name: 'TPIDR_GL1', enc: 's3_6_c15_c10_1', kind: 'store' },
  { name: 'VBAR_GL1', enc: 's3_6_c15_c10_2', kind: 'store' },
  { name: 'SPSR_GL1', enc: 's3_6_c15_c10_3', kind: 'store' },
  { name: 'ASPSR_GL1', enc: 's3_6_c15_c10_4', kind: 'store' },
  { name: 'ESR_GL1', enc: 's3_6_c15_c10_5', kind: 'store' },
  { name: 'ELR_GL1', enc: 's3_6_c15_c10_6', kind: 'store' },
  { name: 'FAR_GL1', enc: 's3_6_c15_c10_7', kind: 'store' },
  { name: 'ACTLR_EL12', enc: 's3_6_c15_c14_6', kind: 'store' },
  { name: 'UPMCR0_EL1', enc: 's3_7_c15_c0_4', kind: 'store', note: 'uncore PMU control (IMODE bits 18:16); Linux reads it on every FIQ' },
  { name: 'UPMSR_EL1', enc: 's3_7_c15_c6_4', kind: 'zero' },
];

/** Architectural registers we trap (HCR_EL2.TACR, TID1) to give them M1 behaviour. */
export const M1_ARCH_OVERRIDES: readonly SysregDef[] = [
  { name: 'ACTLR_EL1', enc: 's3_0_c1_c0_1', kind: 'store', note: 'Apple keeps TSO and other controls here; reads back what was written' },
  { name: 'REVIDR_EL1', enc: 's3_0_c0_c0_6', kind: 'zero' },
  { name: 'AIDR_EL1', enc: 's3_1_c0_c0_7', kind: 'zero' },
];

/** M1 core identity per cluster: MIDR (implementer 0x61 Apple, part 0x022 Icestorm / 0x023 Firestorm). */
export const M1_CLUSTERS = [
  { name: 'Icestorm (E)', midr: 0x611f0221n, mpidrBase: 0x0n },
  { name: 'Firestorm (P)', midr: 0x611f0231n, mpidrBase: 0x10100n },
] as const;

/** Default CPU list of t8103 (as in the upstream device tree: 4 E cores then 4 P cores). */
export function m1CpuIdentity(index: number): { midr: bigint; mpidr: bigint; cluster: number; core: number } {
  const cluster = index < 4 ? 0 : 1;
  const core = index % 4;
  const c = M1_CLUSTERS[cluster]!;
  return { midr: c.midr, mpidr: c.mpidrBase + BigInt(core), cluster, core };
}
