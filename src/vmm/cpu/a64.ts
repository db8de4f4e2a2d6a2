// Just enough A64 decoding for a software backend that delivers exceptions itself: system
// instructions (MRS/MSR/SYS), exception-generating instructions, and the address/size/direction
// of a faulting load or store (for FAR_EL1 and ESR_EL1.WnR). Encodings: Arm ARM C4.1.

export const INSN_WFI = 0xd503207f;

export interface SysInsn {
  op0: number;
  op1: number;
  crn: number;
  crm: number;
  op2: number;
  rt: number;
  /** MRS / SYSL */
  read: boolean;
}

/** MRS, MSR (register), SYS and SYSL; null for anything else (MSR immediate, hints, barriers). */
export function decodeSys(insn: number): SysInsn | null {
  if ((insn & 0xffc00000) >>> 0 !== 0xd5000000) return null;
  const op0 = (insn >>> 19) & 3;
  if (op0 === 0) return null;
  return {
    read: ((insn >>> 21) & 1) === 1,
    op0,
    op1: (insn >>> 16) & 7,
    crn: (insn >>> 12) & 15,
    crm: (insn >>> 8) & 15,
    op2: (insn >>> 5) & 7,
    rt: insn & 31,
  };
}

/** ISS of an MSR/MRS/SYS trap (EC 0x18). */
export function sysIss(s: SysInsn): number {
  return (s.op0 << 20) | (s.op2 << 17) | (s.op1 << 14) | (s.crn << 10) | (s.rt << 5) | (s.crm << 1) | (s.read ? 1 : 0);
}

/** SVC/HVC/SMC #imm16: returns kind and immediate. */
export function decodeExceptionGen(insn: number): { kind: 'svc' | 'hvc' | 'smc' | 'brk'; imm: number } | null {
  const imm = (insn >>> 5) & 0xffff;
  if ((insn & 0xffe0001f) >>> 0 === 0xd4000001) return { kind: 'svc', imm };
  if ((insn & 0xffe0001f) >>> 0 === 0xd4000002) return { kind: 'hvc', imm };
  if ((insn & 0xffe0001f) >>> 0 === 0xd4000003) return { kind: 'smc', imm };
  if ((insn & 0xffe0001f) >>> 0 === 0xd4200000) return { kind: 'brk', imm };
  return null;
}

export interface MemAccess {
  addr: bigint;
  /** Bytes touched (for page-crossing accesses the fault may be in a later page). */
  size: number;
  write: boolean;
  /** Exclusive, acquire/release or atomic: must be naturally aligned. */
  aligned: boolean;
  /** LDTR/STTR: checked with EL0 permissions. */
  unprivileged: boolean;
  /** A cache-maintenance instruction (ESR.CM). */
  cacheOp: boolean;
}

const sext = (v: number, bits: number): bigint => BigInt.asIntN(bits, BigInt(v));
const M64 = (1n << 64n) - 1n;

/**
 * The access a load/store (or DC) instruction makes. `x(n)` returns register n (31 = SP for base
 * registers). Null when the instruction is not a memory access.
 */
export function decodeMemAccess(insn: number, pc: bigint, x: (n: number, sp: boolean) => bigint): MemAccess | null {
  const rn = (insn >>> 5) & 31;
  const base = () => x(rn, true);
  const mk = (addr: bigint, size: number, write: boolean, aligned = false, unprivileged = false): MemAccess =>
    ({ addr: addr & M64, size, write, aligned, unprivileged, cacheOp: false });

  // DC <op>, Xt
  const sys = decodeSys(insn);
  if (sys) {
    if (sys.op0 === 1 && sys.crn === 7 && !sys.read) {
      const zva = sys.op1 === 3 && sys.crm === 4 && sys.op2 === 1;
      return { addr: x(sys.rt, false) & ~63n, size: 64, write: true, aligned: false, unprivileged: false, cacheOp: !zva };
    }
    return null;
  }
  if ((insn & 0x0a000000) !== 0x08000000) return null;
  const size = (insn >>> 30) & 3;
  const v = (insn >>> 26) & 1;

  // Load/store exclusive, ordered, compare-and-swap: bits 29:24 = 001000
  if ((insn & 0x3f000000) === 0x08000000) {
    const l = (insn >>> 22) & 1, o1 = (insn >>> 21) & 1, o2 = (insn >>> 23) & 1;
    const pair = o1 === 1 && o2 === 0;
    const bytes = (1 << size) * (pair ? 2 : 1);
    const cas = o2 === 1 && o1 === 1;
    return mk(base(), bytes, l === 0 || cas, true);
  }
  // Load literal: bits 29:27 = 011, bit 24 = 0
  if ((insn & 0x3b000000) === 0x18000000) {
    const opc = (insn >>> 30) & 3;
    const bytes = v ? 4 << opc : opc === 0 ? 4 : 8;
    return mk(pc + (sext((insn >>> 5) & 0x7ffff, 19) << 2n), bytes, false);
  }
  // Load/store pair: bits 29:27 = 101
  if ((insn & 0x38000000) === 0x28000000) {
    const opc = (insn >>> 30) & 3;
    const l = (insn >>> 22) & 1;
    const type = (insn >>> 23) & 3;
    const scale = v ? 4 << opc : opc === 2 ? 8 : 4;
    const off = sext((insn >>> 15) & 0x7f, 7) * BigInt(scale);
    const addr = type === 1 ? base() : base() + off;
    return mk(addr, scale * 2, l === 0);
  }
  // Load/store register: bits 29:27 = 111
  if ((insn & 0x38000000) === 0x38000000) {
    const opc = (insn >>> 22) & 3;
    const scaleLog = v && opc & 2 ? 4 : size;
    const bytes = 1 << scaleLog;
    const write = v ? (opc & 1) === 0 : opc === 0;
    if (insn & 0x01000000) {
      // unsigned immediate
      return mk(base() + (BigInt((insn >>> 10) & 0xfff) << BigInt(scaleLog)), bytes, write);
    }
    const bit21 = (insn >>> 21) & 1;
    const kind = (insn >>> 10) & 3;
    if (bit21 === 0) {
      const imm = sext((insn >>> 12) & 0x1ff, 9);
      if (kind === 1) return mk(base(), bytes, write); // post-index
      return mk(base() + imm, bytes, write, false, kind === 2);
    }
    if (kind === 2) {
      const rm = (insn >>> 16) & 31;
      const option = (insn >>> 13) & 7;
      const s = (insn >>> 12) & 1;
      let off = x(rm, false);
      if (option === 2) off &= 0xffffffffn;
      else if (option === 6) off = BigInt.asIntN(32, off);
      return mk(base() + (off << BigInt(s ? scaleLog : 0)), bytes, write);
    }
    if (kind === 0) return mk(base(), bytes, true, true); // atomic memory operations
    return mk(base() + (sext((((insn >>> 22) & 1) << 9) | ((insn >>> 12) & 0x1ff), 10) << 3n), 8, false); // LDRAA/LDRAB
  }
  // SIMD load/store multiple or single structures: bits 29:24 = 001100 / 001101
  if ((insn & 0xbe000000) === 0x0c000000) {
    const l = (insn >>> 22) & 1;
    const q = (insn >>> 30) & 1;
    const single = (insn >>> 24) & 1;
    let bytes = 8;
    if (!single) {
      const opcode = (insn >>> 12) & 15;
      const regs = { 0: 4, 2: 4, 4: 3, 6: 3, 7: 1, 8: 2, 10: 2 }[opcode] ?? 1;
      bytes = regs * (q ? 16 : 8);
    }
    return mk(base(), bytes, l === 0);
  }
  return null;
}
