import { assemble, AsmError, type OperandSamples } from './arm64-asm.js';

// Instruction patterns: one 32-bit word and a mask of the bits that must match. Written either as
// an instruction with wildcards (`cbz x0, *`, `bl *`, `mov w0, #?`, `ldr x?, [x?, #?]`), as a hex
// word (`0x94000000/0xfc000000`, mask optional) or `*` (any instruction).

export interface WordPattern {
  value: number;
  mask: number;
  /** As written in the patch, for reports. */
  text: string;
}

// Values tried for each kind of wildcard, one kind at a time (the others stay at their base
// value): between them every bit of a register number, immediate or branch offset field takes both
// values, so the bits that change are exactly the wildcard's field. A value the operand cannot take
// (a 6-bit immediate, an unscaled offset) is skipped. Immediates are sampled non-negative only: a
// negative one would turn `mov x0, #?` into MOVN and free opcode bits; match negative offsets with
// an explicit value or a hex word and mask.
const REGS = [0, 30, 1, 21, 10];
const IMMS = [0n, 1n, 2n, 4n, 7n, 8n, 0x10n, 0x1fn, 0x20n, 0x3fn, 0xfffn, 0xffffn, 0x7ff8n, 0x3ffcn, 0x1f8n, 0xff0n];
const TARGETS = [0n, -4n, 4n, 0x7ffcn, -0x8000n];

function samplesFor(base: OperandSamples): OperandSamples[] {
  return [
    ...REGS.map((reg) => ({ ...base, reg })),
    ...IMMS.map((imm) => ({ ...base, imm })),
    ...TARGETS.map((target) => ({ ...base, target })),
  ];
}

const HEX_WORD = /^0x([0-9a-f]{1,8})(?:\s*\/\s*0x([0-9a-f]{1,8}))?$/i;

export function compileWord(text: string): WordPattern {
  const t = text.trim();
  if (t === '*') return { value: 0, mask: 0, text: t };
  const hm = HEX_WORD.exec(t);
  if (hm) {
    const mask = hm[2] === undefined ? 0xffffffff : parseInt(hm[2], 16) >>> 0;
    return { value: (parseInt(hm[1]!, 16) & mask) >>> 0, mask, text: t };
  }
  if (!/[*?]/.test(t)) {
    const value = assemble(t, 0n, () => undefined);
    return { value, mask: 0xffffffff, text: t };
  }
  // Learn the free bits: a bit that differs from the base encoding belongs to a wildcard operand.
  const tryAssemble = (smp: OperandSamples): number | undefined => {
    try {
      return assemble(t, 0x100000n, () => undefined, smp);
    } catch (e) {
      if (!(e instanceof AsmError)) throw e;
      return undefined;
    }
  };
  let baseSamples: OperandSamples | undefined;
  let base: number | undefined;
  for (const imm of IMMS) {
    base = tryAssemble({ reg: 0, imm, target: 0n });
    if (base !== undefined) { baseSamples = { reg: 0, imm, target: 0n }; break; }
  }
  if (base === undefined || baseSamples === undefined) {
    assemble(t, 0x100000n, () => undefined); // throws the assembler's own explanation
    throw new AsmError(`cannot assemble "${t}"`);
  }
  let free = 0;
  for (const smp of samplesFor(baseSamples)) {
    const w = tryAssemble(smp);
    if (w !== undefined) free |= (w ^ base) >>> 0;
  }
  const mask = ~free >>> 0;
  return { value: (base & mask) >>> 0, mask, text: t };
}

export function wordMatches(p: WordPattern, w: number): boolean {
  return ((w & p.mask) >>> 0) === p.value;
}
