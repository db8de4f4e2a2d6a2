// A small AArch64 assembler for the instructions kernel patches need (A64 encodings from the
// Arm Architecture Reference Manual, checked against llvm-mc in test/patches/arm64-asm.test.ts).
// Operands may be wildcards (`*`, `#?`, `x?`, `w?`): arm64-pattern.ts assembles such an
// instruction several times with different operand values to learn which bits are free.

export class AsmError extends Error {}

/** How the assembler resolves a branch target that names a symbol. */
export type SymbolResolver = (name: string) => bigint | undefined;

/** A wildcard operand is replaced by one of these samples when learning a mask. */
export interface OperandSamples {
  reg: number; // register number used for `x?` / `w?`
  imm: bigint; // value used for `#?`
  target: bigint; // byte offset used for a `*` branch target
}

export const ZERO_SAMPLES: OperandSamples = { reg: 0, imm: 0n, target: 0n };

const CONDS = ['eq', 'ne', 'cs', 'cc', 'mi', 'pl', 'vs', 'vc', 'hi', 'ls', 'ge', 'lt', 'gt', 'le', 'al', 'nv'];
const COND_ALIASES: Record<string, number> = { hs: 2, lo: 3 };

interface Reg {
  n: number; // 0..31 (31 = sp or zr depending on the context)
  sf: 0 | 1; // 1 = 64-bit (x), 0 = 32-bit (w)
  sp: boolean; // written as sp/wsp
}

interface Ctx {
  pc: bigint;
  resolve: SymbolResolver;
  samples: OperandSamples;
}

function splitOperands(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

function reg(op: string | undefined, ctx: Ctx, what = 'register'): Reg {
  if (op === undefined) throw new AsmError(`missing ${what}`);
  const o = op.toLowerCase();
  if (o === 'sp') return { n: 31, sf: 1, sp: true };
  if (o === 'wsp') return { n: 31, sf: 0, sp: true };
  if (o === 'xzr') return { n: 31, sf: 1, sp: false };
  if (o === 'wzr') return { n: 31, sf: 0, sp: false };
  if (o === 'lr') return { n: 30, sf: 1, sp: false };
  if (o === 'fp') return { n: 29, sf: 1, sp: false };
  const m = /^([xw])(\d+|\?)$/.exec(o);
  if (!m) throw new AsmError(`expected a ${what}, got "${op}"`);
  const n = m[2] === '?' ? ctx.samples.reg : Number(m[2]);
  if (n > 30) throw new AsmError(`no register ${op}`);
  return { n, sf: m[1] === 'x' ? 1 : 0, sp: false };
}

function imm(op: string | undefined, ctx: Ctx, what = 'immediate'): bigint {
  if (op === undefined) throw new AsmError(`missing ${what}`);
  const m = /^#?\s*(-)?\s*(0x[0-9a-f_]+|\d+|\?)$/i.exec(op.trim());
  if (!m) throw new AsmError(`expected an ${what} like #0x10, got "${op}"`);
  if (m[2] === '?') return ctx.samples.imm;
  const v = BigInt(m[2]!.replace(/_/g, ''));
  return m[1] ? -v : v;
}

/** Branch target: `*` (any), `#off` (relative to this instruction, as llvm-mc writes it), a
 * bare number (absolute address) or a symbol name. Returns the byte offset from pc. */
function target(op: string | undefined, ctx: Ctx): bigint {
  if (op === undefined) throw new AsmError('missing branch target');
  const o = op.trim();
  if (o === '*') return ctx.samples.target;
  if (o.startsWith('#')) return imm(o, ctx, 'offset');
  if (/^(0x[0-9a-f_]+|\d+)$/i.test(o)) return BigInt(o.replace(/_/g, '')) - ctx.pc;
  const v = ctx.resolve(o);
  if (v === undefined) throw new AsmError(`unknown symbol "${o}"`);
  return v - ctx.pc;
}

function fits(v: bigint, bits: number, signed: boolean): boolean {
  if (signed) return v >= -(1n << BigInt(bits - 1)) && v < 1n << BigInt(bits - 1);
  return v >= 0n && v < 1n << BigInt(bits);
}

function field(v: bigint, bits: number): number {
  return Number(BigInt.asUintN(bits, v));
}

function branchImm(off: bigint, bits: number, name: string): number {
  if (off % 4n !== 0n) throw new AsmError(`${name}: target offset ${off} is not a multiple of 4`);
  if (!fits(off / 4n, bits, true)) throw new AsmError(`${name}: target is out of range (${off} bytes)`);
  return field(off / 4n, bits);
}

function noRegSp(r: Reg, name: string): void {
  if (r.sp) throw new AsmError(`${name}: sp is not allowed here`);
}

function sameWidth(a: Reg, b: Reg, name: string): void {
  if (a.sf !== b.sf) throw new AsmError(`${name}: mixes 32- and 64-bit registers`);
}

/** `lsl #n` shift of a move-wide immediate. */
function shiftOf(op: string | undefined, ctx: Ctx): number {
  if (op === undefined) return 0;
  const m = /^lsl\s+(.*)$/i.exec(op.trim());
  if (!m) throw new AsmError(`expected "lsl #n", got "${op}"`);
  return Number(imm(m[1], ctx, 'shift'));
}

function moveWide(opc: number, rd: Reg, value: bigint, shift: number, name: string): number {
  noRegSp(rd, name);
  if (shift % 16 !== 0 || shift < 0 || shift > (rd.sf ? 48 : 16)) throw new AsmError(`${name}: shift must be 0, 16${rd.sf ? ', 32 or 48' : ''}`);
  if (!fits(value, 16, false)) throw new AsmError(`${name}: immediate ${value} does not fit 16 bits`);
  return ((rd.sf << 31) | (opc << 29) | (0x25 << 23) | ((shift / 16) << 21) | (Number(value) << 5) | rd.n) >>> 0;
}

/** `mov rd, #imm` as llvm-mc picks it: MOVZ with one 16-bit chunk, else MOVN. */
function movImmediate(rd: Reg, v: bigint): number {
  const width = rd.sf ? 64 : 32;
  const u = BigInt.asUintN(width, v);
  if (v < -(1n << BigInt(width - 1)) || v >= 1n << BigInt(width)) throw new AsmError(`mov: ${v} does not fit ${width} bits`);
  for (let s = 0; s < width; s += 16) {
    if ((u & ~(0xffffn << BigInt(s))) === 0n) return moveWide(2, rd, u >> BigInt(s), s, 'mov');
  }
  const n = BigInt.asUintN(width, ~u);
  for (let s = 0; s < width; s += 16) {
    if ((n & ~(0xffffn << BigInt(s))) === 0n) return moveWide(0, rd, n >> BigInt(s), s, 'mov');
  }
  throw new AsmError(`mov: ${v} needs more than one instruction (use movz + movk)`);
}

/** `[xn, #imm]`, `[xn, #imm]!` or `[xn], #imm`. */
function memOperand(ops: string[], at: number, ctx: Ctx): { base: Reg; off: bigint; mode: 'offset' | 'pre' | 'post' } {
  const m = /^\[\s*([^,\]]+)\s*(?:,\s*([^\]]+))?\]\s*(!)?$/.exec(ops[at] ?? '');
  if (!m) throw new AsmError(`expected a memory operand like [x0, #8], got "${ops[at] ?? ''}"`);
  const base = reg(m[1], ctx, 'base register');
  if (base.sf !== 1) throw new AsmError('base register must be 64-bit');
  if (ops[at + 1] !== undefined) {
    if (m[2] !== undefined || m[3]) throw new AsmError('bad post-index operand');
    return { base, off: imm(ops[at + 1], ctx), mode: 'post' };
  }
  return { base, off: m[2] === undefined ? 0n : imm(m[2], ctx), mode: m[3] ? 'pre' : 'offset' };
}

type Encoder = (ops: string[], ctx: Ctx, name: string) => number;

function fixed(word: number): Encoder {
  return (ops, _ctx, name) => {
    if (ops.length) throw new AsmError(`${name} takes no operands`);
    return word;
  };
}

function cmpBranch(op: number): Encoder {
  return (ops, ctx, name) => {
    const rt = reg(ops[0], ctx);
    noRegSp(rt, name);
    return ((rt.sf << 31) | (op << 24) | (branchImm(target(ops[1], ctx), 19, name) << 5) | rt.n) >>> 0;
  };
}

function testBranch(op: number): Encoder {
  return (ops, ctx, name) => {
    const rt = reg(ops[0], ctx);
    noRegSp(rt, name);
    const bit = Number(imm(ops[1], ctx, 'bit number'));
    if (bit < 0 || bit >= (rt.sf ? 64 : 32)) throw new AsmError(`${name}: bit ${bit} out of range`);
    return (((bit >> 5) << 31) | (op << 24) | ((bit & 31) << 19) | (branchImm(target(ops[2], ctx), 14, name) << 5) | rt.n) >>> 0;
  };
}

function addSub(op: number, setFlags: number): Encoder {
  return (ops, ctx, name) => {
    const rd = reg(ops[0], ctx);
    const rn = reg(ops[1], ctx);
    sameWidth(rd, rn, name);
    let v = imm(ops[2], ctx);
    let sh = shiftOf(ops[3], ctx);
    if (sh !== 0 && sh !== 12) throw new AsmError(`${name}: shift must be 0 or 12`);
    if (sh === 0 && v >= 4096n && (v & 0xfffn) === 0n && v < 1n << 24n) {
      v >>= 12n;
      sh = 12;
    }
    if (!fits(v, 12, false)) throw new AsmError(`${name}: immediate ${v} does not fit 12 bits`);
    return ((rd.sf << 31) | (op << 30) | (setFlags << 29) | (0x22 << 23) | ((sh / 12) << 22) | (Number(v) << 10) | (rn.n << 5) | rd.n) >>> 0;
  };
}

function loadStore(isLoad: boolean): Encoder {
  return (ops, ctx, name) => {
    const rt = reg(ops[0], ctx);
    noRegSp(rt, name);
    const mem = memOperand(ops, 1, ctx);
    const size = rt.sf ? 3 : 2;
    const opc = isLoad ? 1 : 0;
    if (mem.mode === 'offset') {
      const scale = 1n << BigInt(size);
      if (mem.off < 0n || mem.off % scale !== 0n || !fits(mem.off / scale, 12, false)) throw new AsmError(`${name}: offset ${mem.off} is not a scaled 12-bit offset`);
      return ((size << 30) | (0x39 << 24) | (opc << 22) | (Number(mem.off / scale) << 10) | (mem.base.n << 5) | rt.n) >>> 0;
    }
    if (!fits(mem.off, 9, true)) throw new AsmError(`${name}: offset ${mem.off} does not fit 9 bits`);
    const idx = mem.mode === 'pre' ? 3 : 1;
    return ((size << 30) | (0x38 << 24) | (opc << 22) | (field(mem.off, 9) << 12) | (idx << 10) | (mem.base.n << 5) | rt.n) >>> 0;
  };
}

function pair(isLoad: boolean): Encoder {
  return (ops, ctx, name) => {
    const r1 = reg(ops[0], ctx);
    const r2 = reg(ops[1], ctx);
    sameWidth(r1, r2, name);
    noRegSp(r1, name);
    noRegSp(r2, name);
    const mem = memOperand(ops, 2, ctx);
    const scale = r1.sf ? 8n : 4n;
    if (mem.off % scale !== 0n || !fits(mem.off / scale, 7, true)) throw new AsmError(`${name}: offset ${mem.off} is not a scaled 7-bit offset`);
    const mode = mem.mode === 'post' ? 1 : mem.mode === 'offset' ? 2 : 3;
    const opc = r1.sf ? 2 : 0;
    return ((opc << 30) | (0x5 << 27) | (mode << 23) | ((isLoad ? 1 : 0) << 22) | (field(mem.off / scale, 7) << 15) | (r2.n << 10) | (mem.base.n << 5) | r1.n) >>> 0;
  };
}

function pcRel(page: boolean): Encoder {
  return (ops, ctx, name) => {
    const rd = reg(ops[0], ctx);
    noRegSp(rd, name);
    if (rd.sf !== 1) throw new AsmError(`${name} needs a 64-bit register`);
    let off = target(ops[1], ctx);
    if (page) {
      // ADRP: the distance between 4 KiB pages of the target and of this instruction.
      const t = ctx.pc + off;
      off = ((t >> 12n) - (ctx.pc >> 12n));
    }
    if (!fits(off, 21, true)) throw new AsmError(`${name}: target out of range`);
    const v = field(off, 21);
    return (((page ? 1 : 0) << 31) | ((v & 3) << 29) | (0x10 << 24) | ((v >> 2) << 5) | rd.n) >>> 0;
  };
}

const ENCODERS: Record<string, Encoder> = {
  nop: fixed(0xd503201f),
  retab: fixed(0xd65f0fff),
  retaa: fixed(0xd65f0bff),
  pacibsp: fixed(0xd503237f),
  paciasp: fixed(0xd503233f),
  autibsp: fixed(0xd50323ff),
  autiasp: fixed(0xd50323bf),
  isb: fixed(0xd5033fdf),
  ret: (ops, ctx) => (0xd65f0000 | ((ops.length ? reg(ops[0], ctx).n : 30) << 5)) >>> 0,
  bti: (ops) => {
    const t = { '': 0, c: 1, j: 2, jc: 3 }[(ops[0] ?? '').toLowerCase()];
    if (t === undefined) throw new AsmError('bti takes c, j or jc');
    return (0xd503241f | (t << 6)) >>> 0;
  },
  brk: (ops, ctx) => {
    const v = imm(ops[0], ctx);
    if (!fits(v, 16, false)) throw new AsmError('brk: immediate does not fit 16 bits');
    return (0xd4200000 | (Number(v) << 5)) >>> 0;
  },
  b: (ops, ctx, name) => (0x14000000 | branchImm(target(ops[0], ctx), 26, name)) >>> 0,
  bl: (ops, ctx, name) => (0x94000000 | branchImm(target(ops[0], ctx), 26, name)) >>> 0,
  br: (ops, ctx) => (0xd61f0000 | (reg(ops[0], ctx).n << 5)) >>> 0,
  blr: (ops, ctx) => (0xd63f0000 | (reg(ops[0], ctx).n << 5)) >>> 0,
  cbz: cmpBranch(0x34),
  cbnz: cmpBranch(0x35),
  tbz: testBranch(0x36),
  tbnz: testBranch(0x37),
  movz: (ops, ctx, name) => moveWide(2, reg(ops[0], ctx), imm(ops[1], ctx), shiftOf(ops[2], ctx), name),
  movn: (ops, ctx, name) => moveWide(0, reg(ops[0], ctx), imm(ops[1], ctx), shiftOf(ops[2], ctx), name),
  movk: (ops, ctx, name) => moveWide(3, reg(ops[0], ctx), imm(ops[1], ctx), shiftOf(ops[2], ctx), name),
  mov: (ops, ctx, name) => {
    const rd = reg(ops[0], ctx);
    const src = ops[1];
    if (src === undefined) throw new AsmError('mov needs two operands');
    if (/^#/.test(src.trim())) return movImmediate(rd, imm(src, ctx));
    const rm = reg(src, ctx);
    sameWidth(rd, rm, name);
    if (rd.sp || rm.sp) return ((rd.sf << 31) | 0x11000000 | (rm.n << 5) | rd.n) >>> 0; // add rd, rn, #0
    return ((rd.sf << 31) | 0x2a0003e0 | (rm.n << 16) | rd.n) >>> 0; // orr rd, zr, rm
  },
  add: addSub(0, 0),
  adds: addSub(0, 1),
  sub: addSub(1, 0),
  subs: addSub(1, 1),
  cmp: (ops, ctx, name) => {
    const rn = reg(ops[0], ctx);
    const zr = rn.sf ? 'xzr' : 'wzr';
    return addSub(1, 1)([zr, ...ops], ctx, name);
  },
  cmn: (ops, ctx, name) => {
    const rn = reg(ops[0], ctx);
    const zr = rn.sf ? 'xzr' : 'wzr';
    return addSub(0, 1)([zr, ...ops], ctx, name);
  },
  ldr: loadStore(true),
  str: loadStore(false),
  ldp: pair(true),
  stp: pair(false),
  adr: pcRel(false),
  adrp: pcRel(true),
};

/** The mnemonics this assembler knows (b.<cond> included as "b.cond"). */
export const MNEMONICS = [...Object.keys(ENCODERS), 'b.cond'].sort();

/** Assemble one instruction at address `pc`. */
export function assemble(text: string, pc = 0n, resolve: SymbolResolver = () => undefined, samples: OperandSamples = ZERO_SAMPLES): number {
  const src = text.replace(/\/\/.*$|;.*$/, '').trim();
  const m = /^([a-z0-9.]+)\s*(.*)$/i.exec(src);
  if (!m) throw new AsmError(`cannot read instruction "${text}"`);
  const name = m[1]!.toLowerCase();
  const ops = splitOperands(m[2]!);
  const ctx: Ctx = { pc, resolve, samples };
  const cm = /^b\.([a-z]{2})$/.exec(name);
  if (cm) {
    const cond = COND_ALIASES[cm[1]!] ?? CONDS.indexOf(cm[1]!);
    if (cond < 0) throw new AsmError(`unknown condition "${cm[1]}"`);
    return (0x54000000 | (branchImm(target(ops[0], ctx), 19, name) << 5) | cond) >>> 0;
  }
  const enc = ENCODERS[name];
  if (!enc) throw new AsmError(`unsupported instruction "${name}" (known: ${MNEMONICS.join(', ')})`);
  return enc(ops, ctx, name);
}

/** `mov x0, #value; ...` as MOVZ/MOVN + MOVK words for any 64-bit (or 32-bit) constant. */
export function materialize(rdName: string, value: bigint): number[] {
  const rd = reg(rdName, { pc: 0n, resolve: () => undefined, samples: ZERO_SAMPLES });
  const width = rd.sf ? 64 : 32;
  try {
    return [movImmediate(rd, value)];
  } catch { /* needs several instructions */ }
  const u = BigInt.asUintN(width, value);
  const words: number[] = [];
  for (let s = 0; s < width; s += 16) {
    const chunk = (u >> BigInt(s)) & 0xffffn;
    if (chunk === 0n) continue;
    words.push(moveWide(words.length === 0 ? 2 : 3, rd, chunk, s, 'mov'));
  }
  return words;
}

/** Little-endian bytes of instruction words. */
export function wordsToBytes(words: number[]): Uint8Array {
  const out = new Uint8Array(words.length * 4);
  const dv = new DataView(out.buffer);
  words.forEach((w, i) => dv.setUint32(i * 4, w, true));
  return out;
}
