import { createRequire } from 'node:module';

// Disassembly for patch reports, from Capstone (compiled to WebAssembly, runs offline): an
// independent decoder, so the report shows what the bytes are, not what our assembler meant.

interface CsInsn {
  address: bigint;
  mnemonic: string;
  op_str: string;
  size: number;
}
interface CsEngine {
  disasm(buf: number[] | Uint8Array, addr: bigint | number): CsInsn[];
  close(): void;
}
interface CsModule {
  Capstone: new (arch: number, mode: number) => CsEngine;
  ARCH_ARM64: number;
  MODE_ARM: number;
}

let engine: Promise<CsEngine> | undefined;

function load(): Promise<CsEngine> {
  engine ??= (async () => {
    const require = createRequire(import.meta.url);
    const factory = require('@alexaltea/capstone-js') as () => Promise<CsModule>;
    const cs = await factory();
    return new cs.Capstone(cs.ARCH_ARM64, cs.MODE_ARM);
  })();
  return engine;
}

/** One line per 4-byte word: "mnemonic operands", or ".word 0x..." where Capstone cannot decode. */
export async function disassemble(bytes: Uint8Array, vmaddr: bigint): Promise<string[]> {
  const cs = await load();
  const out: string[] = [];
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    const word = bytes.subarray(i, i + 4);
    let insn: CsInsn | undefined;
    try {
      [insn] = cs.disasm(Array.from(word), vmaddr + BigInt(i));
    } catch {
      insn = undefined; // Capstone throws on an undefined encoding
    }
    const w = (word[0]! | (word[1]! << 8) | (word[2]! << 16) | (word[3]! << 24)) >>> 0;
    out.push(insn ? `${insn.mnemonic} ${insn.op_str}`.trim() : `.word 0x${w.toString(16).padStart(8, '0')}`);
  }
  if (bytes.length % 4) out.push(`.byte ${Array.from(bytes.subarray(bytes.length - (bytes.length % 4)), (b) => `0x${b.toString(16)}`).join(', ')}`);
  return out;
}

export async function disassembleWord(word: number, vmaddr: bigint): Promise<string> {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, word, true);
  return (await disassemble(b, vmaddr))[0]!;
}
