// The few A64 decodings the matchers need: PC-relative address formation (ADRP + ADD/LDR) for
// string cross-references, and the instructions that start or end a function.

export const PACIBSP = 0xd503237f;
export const PACIASP = 0xd503233f;
export const BTI_C = 0xd503245f;
export const BTI_JC = 0xd50324df;
export const NOP = 0xd503201f;

export function rd(w: number): number {
  return w & 31;
}

export function rn(w: number): number {
  return (w >>> 5) & 31;
}

/** `add xd, xn, #imm{, lsl #12}` (64-bit, no flags): the immediate, or undefined. */
export function addImm(w: number): bigint | undefined {
  if ((w & 0xff800000) >>> 0 !== 0x91000000) return undefined;
  const imm = BigInt((w >>> 10) & 0xfff);
  return (w >>> 22) & 1 ? imm << 12n : imm;
}

/** Unsigned-offset LDR/STR (any size, integer or SIMD) with base register: the byte offset. */
export function ldrStrUnsignedOffset(w: number): bigint | undefined {
  if ((w & 0x3b000000) >>> 0 !== 0x39000000) return undefined;
  const size = w >>> 30;
  const v = (w >>> 26) & 1;
  const opc = (w >>> 22) & 3;
  const scale = v && opc >= 2 ? 4 : size; // 128-bit SIMD Q registers scale by 16
  return BigInt((w >>> 10) & 0xfff) << BigInt(scale);
}

/** `stp x?, x?, [sp, #-n]!` (64-bit pre-index store pair to sp): a frame being opened. */
export function isStpPreSp(w: number): boolean {
  return (w & 0xffc003e0) >>> 0 === 0xa98003e0 && ((w >>> 21) & 1) === 1; // negative imm7
}

/** `sub sp, sp, #imm`. */
export function isSubSp(w: number): boolean {
  return (w & 0xff8003ff) >>> 0 === 0xd10003ff;
}

/** `stp x29, x30, [sp, #off]` or its pre-index form. */
export function isStpFpLr(w: number): boolean {
  return ((w & 0xffc07fff) >>> 0 === 0xa9007bfd || (w & 0xffc07fff) >>> 0 === 0xa9807bfd);
}

export const PACIB_LR_SP = 0xdac107fe; // pacib x30, sp (what clang emits for v8.3+ targets)
export const PACIA_LR_SP = 0xdac103fe; // pacia x30, sp

/** Signs the return address with sp as modifier: the first instruction of a signed frame. */
export function isPacSp(w: number): boolean {
  return w === PACIBSP || w === PACIASP || w === PACIB_LR_SP || w === PACIA_LR_SP;
}

/** The return that authenticates what `pac` signed: RETAB for the B key, RETAA for the A key. */
export function authReturnFor(pac: number): number {
  return pac === PACIBSP || pac === PACIB_LR_SP ? 0xd65f0fff : 0xd65f0bff;
}

/** `ret`, `retaa`/`retab`, `brk`: the function (or a path of it) ends here. */
export function isReturnOrTrap(w: number): boolean {
  return (
    (w & 0xfffffc1f) >>> 0 === 0xd65f0000 || // ret xn
    w === 0xd65f0bff || w === 0xd65f0fff || // retaa, retab
    (w & 0xffe0001f) >>> 0 === 0xd4200000 // brk #imm
  );
}

/** Opens a stack frame: `stp x?, x?, [sp, #-n]!` or `sub sp, sp, #n`. */
export function isFrameOpen(w: number): boolean {
  return isStpPreSp(w) || isSubSp(w);
}

/** Other prologue instructions: `mov x29, sp`, `add x29, sp, #n`, `stp` (x or d registers) to sp. */
export function isFramePointerSetup(w: number): boolean {
  return (
    (w & 0xffc003ff) >>> 0 === 0x910003fd || // add x29, sp, #n (mov x29, sp when n = 0)
    (w & 0xffc003e0) >>> 0 === 0xa90003e0 || // stp x?, x?, [sp, #n]
    (w & 0xff8003e0) >>> 0 === 0x6d0003e0 || // stp d?, d?, [sp, #n] / pre-index
    (w & 0xffc003e0) >>> 0 === 0x6d8003e0
  );
}

/** An instruction that may open a function: PAC signing, BTI landing pad, or frame setup. */
export function isPrologueStart(w: number): boolean {
  return isPacSp(w) || w === BTI_C || w === BTI_JC || isStpPreSp(w) || isSubSp(w) || isStpFpLr(w);
}

