// System-register encodings as MRS/MSR name them: S<op0>_<op1>_C<crn>_C<crm>_<op2>.

export interface SysregEncoding {
  op0: number;
  op1: number;
  crn: number;
  crm: number;
  op2: number;
}

/** A compact numeric key (the same packing as the ISS of an MSR/MRS trap, without Rt/direction). */
export function sysregKey(e: SysregEncoding): number {
  return (e.op0 << 14) | (e.op1 << 11) | (e.crn << 7) | (e.crm << 3) | e.op2;
}

export function sysregFromKey(k: number): SysregEncoding {
  return { op0: (k >> 14) & 3, op1: (k >> 11) & 7, crn: (k >> 7) & 15, crm: (k >> 3) & 15, op2: k & 7 };
}

/** Parse "s3_5_c15_c0_0" (case-insensitive). */
export function parseSysreg(text: string): SysregEncoding {
  const m = /^s(\d)_(\d)_c(\d+)_c(\d+)_(\d)$/i.exec(text.trim());
  if (!m) throw new Error(`not a system register encoding: ${text}`);
  return { op0: +m[1]!, op1: +m[2]!, crn: +m[3]!, crm: +m[4]!, op2: +m[5]! };
}

export function formatSysreg(e: SysregEncoding): string {
  return `s${e.op0}_${e.op1}_c${e.crn}_c${e.crm}_${e.op2}`;
}

/** IMPLEMENTATION DEFINED space (Arm ARM D12.3.2): op0 = 3 with CRn = 11 or 15. */
export function isImpdef(e: SysregEncoding): boolean {
  return e.op0 === 3 && (e.crn === 11 || e.crn === 15);
}
