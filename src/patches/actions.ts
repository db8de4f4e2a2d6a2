import { PatchError } from '../errors.js';
import { AsmError, assemble, materialize, wordsToBytes } from './arm64-asm.js';
import { authReturnFor, BTI_C, BTI_JC, isPacSp, NOP } from './arm64-decode.js';
import type { ChainedFixup } from '../macho/fixups.js';
import { reencodeTarget } from './fixups.js';
import type { Action, Patch } from './patch-set.js';
import type { Collection } from './target.js';

// What an action writes at a given place: the bytes after, computed from the bytes before.

export interface Site {
  offset: number;
  vmaddr: bigint;
}

export interface Resolver {
  symbol(name: string): bigint | undefined;
  chainEntry(offset: number): ChainedFixup | undefined;
}

const u32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

function fail(p: Patch, site: Site, msg: string): never {
  throw new PatchError(`patch ${p.id} (${p.source}) at 0x${site.vmaddr.toString(16)}: ${msg}`);
}

function asm(p: Patch, site: Site, lines: string[], r: Resolver): number[] {
  return lines.map((t, i) => {
    try {
      return assemble(t, site.vmaddr + BigInt(i * 4), (n) => r.symbol(n));
    } catch (e) {
      if (e instanceof AsmError) fail(p, site, `instruction "${t}": ${e.message}`);
      throw e;
    }
  });
}

/** `return N` at a function start. A first instruction that signs the return address (PACIBSP,
 * PACIASP, PACIB/PACIA x30, sp) is kept, and the function then leaves with RETAB / RETAA: PACIBSP
 * is also the BTI landing pad of indirect calls, so replacing it could fault on BTI-enforcing
 * pages. A leading BTI is kept for the same reason, followed by a plain RET. */
function returnConstant(bytes: Uint8Array, site: Site, value: bigint, width: 32 | 64): number[] {
  const first = u32(bytes, site.offset);
  const reg = width === 64 ? 'x0' : 'w0';
  const body = materialize(reg, value);
  if (isPacSp(first)) return [first, ...body, authReturnFor(first)];
  if (first === BTI_C || first === BTI_JC) return [first, ...body, 0xd65f03c0];
  return [...body, 0xd65f03c0];
}

/** The bytes the action writes at `site` (same length as the bytes it replaces). */
export function actionBytes(p: Patch, a: Action, c: Collection, site: Site, r: Resolver): Uint8Array {
  const b = c.bytes;
  switch (a.kind) {
    case 'replace': {
      const out = Uint8Array.from(b.subarray(site.offset, site.offset + a.bytes.length));
      for (let i = 0; i < out.length; i++) {
        const m = a.mask ? a.mask[i]! : 0xff;
        out[i] = (out[i]! & ~m) | (a.bytes[i]! & m);
      }
      return out;
    }
    case 'instructions':
      return wordsToBytes(asm(p, site, a.lines, r));
    case 'nop':
      return wordsToBytes(new Array<number>(a.count).fill(NOP));
    case 'return':
      return wordsToBytes(returnConstant(b, site, a.value, a.width));
    case 'pointer': {
      const e = r.chainEntry(site.offset);
      if (!e) fail(p, site, 'is not a chained-fixup pointer slot (m1prep writes pointers only by re-encoding a chain entry)');
      const to = /^0x[0-9a-f]+$/i.test(a.to) ? BigInt(a.to) : r.symbol(a.to);
      if (to === undefined) fail(p, site, `unknown symbol "${a.to}" for the pointer target`);
      const raw = reencodeTarget(e, to, c.baseVmaddr);
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, raw, true);
      return out;
    }
  }
}

/** Is the action's output independent of where it is written and of what was there? (Then a
 * re-patch can be recognised by looking for the output in place of the original bytes.) */
export function positionIndependent(p: Patch, a: Action, r: Resolver): boolean {
  if (a.kind === 'nop') return true;
  if (a.kind !== 'instructions') return false;
  try {
    const x = asm(p, { offset: 0, vmaddr: 0x100000n }, a.lines, r);
    const y = asm(p, { offset: 0, vmaddr: 0x7f00000n }, a.lines, r);
    return x.every((w, i) => w === y[i]);
  } catch {
    return false;
  }
}
