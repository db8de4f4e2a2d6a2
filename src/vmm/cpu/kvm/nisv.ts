// Decoding of the loads and stores that reach MMIO without a valid instruction syndrome: KVM
// reports them as KVM_EXIT_ARM_NISV (with KVM_CAP_ARM_NISV_TO_USER) and the VMM must emulate them
// — register pairs (LDP/STP/LDNP/STNP/LDPSW), pre/post-index writeback, and SIMD&FP registers
// (B/H/S/D/Q). Encodings: Arm ARM C4.1.66 (loads and stores). A pure function: the caller reads
// registers and memory and applies the plan.

export type RegFile = 'x' | 'v';

export interface NisvElement {
  /** Byte offset from the access's lowest address. */
  offset: number;
  /** Bytes moved (1, 2, 4, 8 or 16). */
  size: 1 | 2 | 4 | 8 | 16;
  file: RegFile;
  /** Register number (x: 31 is XZR; v: 0..31). */
  reg: number;
  /** Loads: sign-extend to this many bits (32 or 64), else zero-extend. */
  signExtendTo?: 32 | 64;
}

export interface NisvPlan {
  write: boolean;
  /** Base register (31 = SP) and the address the access starts at. */
  rn: number;
  elements: NisvElement[];
  /** Address = base + this (pre-index and offset forms; 0 for post-index). */
  addrOffset: bigint;
  /** Register-offset form: address += extend(Xm/Wm, option) << shift. */
  offsetReg?: { rm: number; option: number; shift: number };
  /** Base register update after the access, if any. */
  writeback: bigint | null;
  mnemonic: string;
}

const sext = (v: number, bits: number): bigint => BigInt.asIntN(bits, BigInt(v));

/** The emulation plan of an instruction, or null if it is not a plain load/store register (pair). */
export function decodeNisv(insn: number): NisvPlan | null {
  insn >>>= 0;
  const v = (insn >>> 26) & 1;
  const rn = (insn >>> 5) & 31;
  const rt = insn & 31;

  // Load/store pair: op0 bits 29:27 = 101.
  if (((insn >>> 27) & 7) === 5) {
    const opc = insn >>> 30;
    const type = (insn >>> 23) & 3; // 0 no-allocate, 1 post, 2 offset, 3 pre
    const load = ((insn >>> 22) & 1) === 1;
    const rt2 = (insn >>> 10) & 31;
    let size: 4 | 8 | 16;
    let signed = false;
    if (v) {
      if (opc === 3) return null;
      size = ([4, 8, 16] as const)[opc]!;
    } else if (opc === 0) size = 4;
    else if (opc === 2) size = 8;
    else if (opc === 1 && load && type !== 0) {
      size = 4;
      signed = true; // LDPSW
    } else return null; // STGP and reserved
    const imm = sext((insn >>> 15) & 0x7f, 7) * BigInt(size);
    const file: RegFile = v ? 'v' : 'x';
    const el = (offset: number, reg: number): NisvElement => ({ offset, size, file, reg, ...(signed ? { signExtendTo: 64 as const } : {}) });
    const name = `${type === 0 ? (load ? 'LDNP' : 'STNP') : load ? (signed ? 'LDPSW' : 'LDP') : 'STP'}${v ? ' (SIMD&FP)' : ''}`;
    return {
      write: !load,
      rn,
      elements: [el(0, rt), el(size, rt2)],
      addrOffset: type === 1 ? 0n : imm,
      writeback: type === 1 || type === 3 ? imm : null,
      mnemonic: name,
    };
  }

  // Load/store register: op0 bits 29:27 = 111 (bits 25:24 select the addressing form).
  if (((insn >>> 27) & 7) === 7 && ((insn >>> 25) & 1) === 0) {
    const sizeBits = insn >>> 30;
    const opc = (insn >>> 22) & 3;
    let size: 1 | 2 | 4 | 8 | 16;
    let load: boolean;
    let signExtendTo: 32 | 64 | undefined;
    if (v) {
      if (opc & 2) {
        if (sizeBits !== 0) return null;
        size = 16;
      } else size = (1 << sizeBits) as 1 | 2 | 4 | 8;
      load = (opc & 1) === 1;
    } else {
      size = (1 << sizeBits) as 1 | 2 | 4 | 8;
      if (opc === 0) load = false;
      else if (opc === 1) load = true;
      else if (opc === 2) {
        if (sizeBits === 3) return null; // PRFM
        load = true;
        signExtendTo = 64;
      } else {
        if (sizeBits >= 2) return null;
        load = true;
        signExtendTo = 32;
      }
    }
    let addrOffset = 0n;
    let writeback: bigint | null = null;
    let offsetReg: NisvPlan['offsetReg'];
    let form: string;
    if ((insn >>> 24) & 1) {
      addrOffset = BigInt((insn >>> 10) & 0xfff) * BigInt(size);
      form = 'unsigned offset';
    } else if (((insn >>> 21) & 1) === 0) {
      const imm = sext((insn >>> 12) & 0x1ff, 9);
      const kind = (insn >>> 10) & 3;
      if (kind === 2) return null; // LDTR/STTR: unprivileged, never emulated
      if (kind === 0) { addrOffset = imm; form = 'unscaled'; }
      else if (kind === 1) { writeback = imm; form = 'post-index'; }
      else { addrOffset = imm; writeback = imm; form = 'pre-index'; }
    } else if (((insn >>> 10) & 3) === 2) {
      const option = (insn >>> 13) & 7;
      if ((option & 2) === 0) return null; // reserved extend
      offsetReg = { rm: (insn >>> 16) & 31, option, shift: (insn >>> 12) & 1 ? Math.log2(size) : 0 };
      form = 'register offset';
    } else return null; // atomic memory operations and LDRAA/LDRAB: not emulated
    const el: NisvElement = { offset: 0, size, file: v ? 'v' : 'x', reg: rt, ...(signExtendTo ? { signExtendTo } : {}) };
    return {
      write: !load, rn, elements: [el], addrOffset, writeback, mnemonic: `${load ? 'LDR' : 'STR'} ${form}${v ? ' (SIMD&FP)' : ''}`,
      ...(offsetReg ? { offsetReg } : {}),
    };
  }
  return null;
}

/** The value a load leaves in a general-purpose register (Wt loads clear the upper half). */
export function extendLoad(raw: bigint, el: NisvElement): bigint {
  const bits = BigInt(el.size * 8);
  if (!el.signExtendTo) return raw;
  const signed = BigInt.asIntN(Number(bits), raw);
  return BigInt.asUintN(el.signExtendTo, signed);
}

/** The register offset of the register-offset form (option: UXTW 010, LSL/UXTX 011, SXTW 110, SXTX 111). */
export function registerOffset(xm: bigint, o: NonNullable<NisvPlan['offsetReg']>): bigint {
  let v = xm;
  if (o.option === 2) v &= 0xffffffffn;
  else if (o.option === 6) v = BigInt.asIntN(32, v);
  return BigInt.asUintN(64, v << BigInt(o.shift));
}
