import { FormatError } from '../errors.js';
import { u64 } from './macho-bytes.js';
import { commandOf, headerVmaddr, vmToFileOffset, type MachO } from './macho.js';
import { BIND_SYMBOL_FLAGS_WEAK_IMPORT, BIND_TYPE_POINTER, REBASE_TYPE_POINTER, decodeBinds, decodeRebases } from './dyld-info.js';
import { walkThreadedFixups } from './fixups-threaded.js';
import { parseChainedFixups, walkChainedFixups, type PointerAuth } from './fixups.js';

// Every pointer slot of a linked image that a loader must touch, whatever encoding the linker
// chose (LC_DYLD_INFO opcodes or LC_DYLD_CHAINED_FIXUPS), as one neutral list: rebases with the
// unslid address they point at, binds with a symbol name.

export interface SlotRebase {
  address: bigint;
  target: bigint;
  auth?: PointerAuth;
}

export interface SlotBind {
  address: bigint;
  symbol: string;
  addend: bigint;
  weakImport: boolean;
  /** From the lazy-bind stream (a stub's pointer). */
  lazy: boolean;
  auth?: PointerAuth;
}

export interface ImageFixups {
  rebases: SlotRebase[];
  binds: SlotBind[];
}

export function imageFixups(m: MachO): ImageFixups {
  const fx = parseChainedFixups(m);
  if (fx) {
    const rebases: SlotRebase[] = [];
    const binds: SlotBind[] = [];
    for (const f of walkChainedFixups(m, fx, headerVmaddr(m) ?? 0n)) {
      if (f.kind === 'rebase') {
        rebases.push({ address: f.address, target: f.target!, auth: f.auth });
      } else {
        const imp = fx.imports[f.ordinal!]!;
        binds.push({ address: f.address, symbol: imp.name, addend: imp.addend + (f.addend ?? 0n), weakImport: imp.weak_import, lazy: false, auth: f.auth });
      }
    }
    return { rebases, binds };
  }
  if (!commandOf(m, 'dyld_info')) return { rebases: [], binds: [] };
  const rebases: SlotRebase[] = decodeRebases(m).map((r) => {
    if (r.type !== REBASE_TYPE_POINTER) throw new FormatError('rebase opcodes', r.address, `rebase type ${r.type} is not a pointer (text relocations are not supported)`);
    const off = vmToFileOffset(m, r.address);
    if (off === undefined) throw new FormatError('rebase opcodes', r.address, `rebase at 0x${r.address.toString(16)} is not in file data`);
    return { address: r.address, target: u64(m.bytes, Number(off)) };
  });
  const threaded = walkThreadedFixups(m);
  if (threaded) {
    for (const f of threaded.fixups) {
      if (f.kind === 'rebase') rebases.push({ address: f.address, target: f.target!, auth: f.auth });
    }
  }
  const binds: SlotBind[] = [];
  for (const f of threaded?.fixups ?? []) {
    if (f.kind !== 'bind') continue;
    const e = threaded!.table[f.ordinal!]!;
    binds.push({ address: f.address, symbol: e.symbol, addend: e.addend + (f.addend ?? 0n), weakImport: (e.flags & BIND_SYMBOL_FLAGS_WEAK_IMPORT) !== 0, lazy: false, auth: f.auth });
  }
  for (const kind of ['bind', 'lazy_bind'] as const) {
    for (const bd of decodeBinds(m, kind)) {
      if (bd.type !== BIND_TYPE_POINTER) throw new FormatError('bind opcodes', bd.address, `bind type ${bd.type} is not a pointer`);
      binds.push({ address: bd.address, symbol: bd.symbol, addend: bd.addend, weakImport: (bd.flags & BIND_SYMBOL_FLAGS_WEAK_IMPORT) !== 0, lazy: kind === 'lazy_bind' });
    }
  }
  return { rebases, binds };
}
