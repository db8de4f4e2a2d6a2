// A VMSAv8-64 stage-1 walk of the EL1&0 regime, used to classify a fault that the engine reported
// without its syndrome (translation / access flag / permission, and the level), to read guest
// memory by virtual address (gdb, instruction fetch for decoding), and to map IC IVAU addresses.
// Granules 4K, 16K and 64K; 48-bit output addresses.

export interface Regime {
  sctlr: bigint;
  tcr: bigint;
  ttbr0: bigint;
  ttbr1: bigint;
}

export type AccessKind = 'read' | 'write' | 'exec';

export type WalkResult =
  | { ok: true; pa: bigint }
  | { ok: false; fsc: number; level: number };

export const FSC_TRANSLATION = 0x04;
export const FSC_ACCESS_FLAG = 0x08;
export const FSC_PERMISSION = 0x0c;
export const FSC_ALIGNMENT = 0x21;

const OA_MASK = 0x0000_ffff_ffff_f000n;

/** Walk `va`. `el` is the privilege the access is checked with; `pan` is PSTATE.PAN. */
export function walk(
  va: bigint,
  kind: AccessKind,
  el: 0 | 1,
  pan: boolean,
  r: Regime,
  read64: (pa: bigint) => bigint | null,
): WalkResult {
  if ((r.sctlr & 1n) === 0n) return { ok: true, pa: va & 0x0000_ffff_ffff_ffffn };
  const upper = ((va >> 55n) & 1n) === 1n;
  const tcr = r.tcr;
  const tsz = Number(upper ? (tcr >> 16n) & 0x3fn : tcr & 0x3fn);
  const epd = upper ? (tcr >> 23n) & 1n : (tcr >> 7n) & 1n;
  const tbi = upper ? (tcr >> 38n) & 1n : (tcr >> 37n) & 1n;
  let g: number;
  if (upper) {
    const tg1 = Number((tcr >> 30n) & 3n);
    g = tg1 === 1 ? 14 : tg1 === 3 ? 16 : 12;
  } else {
    const tg0 = Number((tcr >> 14n) & 3n);
    g = tg0 === 2 ? 14 : tg0 === 1 ? 16 : 12;
  }
  const inputSize = 64 - tsz;
  // Bits above the input size must all equal bit 55 (ignoring the top byte when TBI is set).
  const top = tbi ? 56 : 64;
  const checkBits = top - inputSize;
  if (checkBits > 0) {
    const hi = (va >> BigInt(inputSize)) & ((1n << BigInt(checkBits)) - 1n);
    const want = upper ? (1n << BigInt(checkBits)) - 1n : 0n;
    if (hi !== want) return { ok: false, fsc: FSC_TRANSLATION, level: 0 };
  }
  if (epd) return { ok: false, fsc: FSC_TRANSLATION, level: 0 };
  const stride = g - 3;
  const levels = Math.ceil((inputSize - g) / stride);
  let level = 4 - levels;
  let table = (upper ? r.ttbr1 : r.ttbr0) & 0x0000_ffff_ffff_fffen;
  let apTable = 0n, uxnTable = 0n, pxnTable = 0n;
  for (let guard = 0; guard < 5; guard++) {
    const shift = g + stride * (3 - level);
    const bits = level === 4 - levels ? inputSize - shift : stride;
    const index = (va >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
    const desc = read64(table + index * 8n);
    if (desc === null || (desc & 1n) === 0n) return { ok: false, fsc: FSC_TRANSLATION, level };
    const isTable = level < 3 && (desc & 2n) !== 0n;
    if (isTable) {
      apTable |= (desc >> 61n) & 3n;
      uxnTable |= (desc >> 60n) & 1n;
      pxnTable |= (desc >> 59n) & 1n;
      table = desc & OA_MASK & ~((1n << BigInt(g)) - 1n);
      level++;
      continue;
    }
    if (level === 3 && (desc & 2n) === 0n) return { ok: false, fsc: FSC_TRANSLATION, level };
    if ((desc & (1n << 10n)) === 0n) return { ok: false, fsc: FSC_ACCESS_FLAG, level };
    const ap1 = ((desc >> 6n) & 1n) === 1n && (apTable & 1n) === 0n; // EL0 accessible
    const ro = ((desc >> 7n) & 1n) === 1n || (apTable & 2n) !== 0n;
    const uxn = ((desc >> 54n) & 1n) === 1n || uxnTable === 1n;
    const pxn = ((desc >> 53n) & 1n) === 1n || pxnTable === 1n;
    const wxn = ((r.sctlr >> 19n) & 1n) === 1n;
    let allowed: boolean;
    if (kind === 'exec') {
      allowed = el === 0 ? !uxn && !(wxn && !ro && ap1) : !pxn && !(ap1 && !ro) && !(wxn && !ro);
    } else if (el === 0) {
      allowed = ap1 && (kind === 'read' || !ro);
    } else {
      allowed = !(pan && ap1) && (kind === 'read' || !ro);
    }
    if (!allowed) return { ok: false, fsc: FSC_PERMISSION, level };
    const offBits = BigInt(g + stride * (3 - level));
    const pa = (desc & OA_MASK & ~((1n << offBits) - 1n)) | (va & ((1n << offBits) - 1n));
    return { ok: true, pa };
  }
  return { ok: false, fsc: FSC_TRANSLATION, level: 3 };
}
