import { FormatError } from '../errors.js';
import { cString, uleb } from './macho-bytes.js';
import { commandOf, exportsTrieCommand, type MachO } from './macho.js';

// The exports trie of LC_DYLD_INFO(_ONLY).export_off or LC_DYLD_EXPORTS_TRIE, walked into a flat
// list. Node layout and flags: mach-o/loader.h (EXPORT_SYMBOL_FLAGS_*).

export const EXPORT_SYMBOL_FLAGS_KIND_MASK = 0x03;
export const EXPORT_SYMBOL_FLAGS_KIND_REGULAR = 0x00;
export const EXPORT_SYMBOL_FLAGS_KIND_THREAD_LOCAL = 0x01;
export const EXPORT_SYMBOL_FLAGS_KIND_ABSOLUTE = 0x02;
export const EXPORT_SYMBOL_FLAGS_WEAK_DEFINITION = 0x04;
export const EXPORT_SYMBOL_FLAGS_REEXPORT = 0x08;
export const EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER = 0x10;
export const EXPORT_SYMBOL_FLAGS_STATIC_RESOLVER = 0x20;

export interface ExportedSymbol {
  name: string;
  flags: number;
  /** Offset from the image's mach header address (absolute for KIND_ABSOLUTE). */
  address?: bigint;
  /** For re-exports: the library ordinal and the name there ('' = same name). */
  reexport?: { ordinal: number; importName: string };
  resolver?: bigint;
}

/** Deeper than any real symbol name is long: a loop or garbage. */
const MAX_DEPTH = 4096;

/** The trie bytes of an image (from LC_DYLD_EXPORTS_TRIE or LC_DYLD_INFO), or undefined. */
export function exportsTrieRange(m: MachO): { off: number; size: number } | undefined {
  const t = exportsTrieCommand(m);
  if (t && t.datasize > 0) return { off: t.dataoff, size: t.datasize };
  const d = commandOf(m, 'dyld_info');
  if (d && d.export_size > 0) return { off: d.export_off, size: d.export_size };
  return undefined;
}

export function parseExportsTrie(bytes: Uint8Array, start: number, size: number): ExportedSymbol[] {
  const end = start + size;
  const structure = 'exports trie';
  const out: ExportedSymbol[] = [];
  const visited = new Set<number>();
  const stack: { node: number; prefix: string; depth: number }[] = [{ node: start, prefix: '', depth: 0 }];
  while (stack.length > 0) {
    const { node, prefix, depth } = stack.pop()!;
    if (node < start || node >= end) throw new FormatError(structure, BigInt(node), 'node offset outside the trie');
    if (visited.has(node)) throw new FormatError(structure, BigInt(node), 'node visited twice (the trie loops)');
    if (depth > MAX_DEPTH) throw new FormatError(structure, BigInt(node), 'trie deeper than any symbol name');
    visited.add(node);
    let [terminalSize, p] = uleb(bytes, node, end, structure);
    const childrenAt = p + Number(terminalSize);
    if (terminalSize > BigInt(end - p)) throw new FormatError(structure, BigInt(node), 'terminal info runs past the trie');
    if (terminalSize > 0n) {
      let flags: bigint;
      [flags, p] = uleb(bytes, p, childrenAt, structure);
      const sym: ExportedSymbol = { name: prefix, flags: Number(flags) };
      if (Number(flags) & EXPORT_SYMBOL_FLAGS_REEXPORT) {
        let ord: bigint;
        [ord, p] = uleb(bytes, p, childrenAt, structure);
        sym.reexport = { ordinal: Number(ord), importName: cString(bytes, p, childrenAt, `${structure} re-export name`) };
      } else {
        [sym.address, p] = uleb(bytes, p, childrenAt, structure);
        if (Number(flags) & EXPORT_SYMBOL_FLAGS_STUB_AND_RESOLVER) [sym.resolver, p] = uleb(bytes, p, childrenAt, structure);
      }
      out.push(sym);
    }
    p = childrenAt;
    if (p >= end) throw new FormatError(structure, BigInt(p), 'child count runs past the trie');
    const n = bytes[p++]!;
    const kids: { node: number; prefix: string; depth: number }[] = [];
    for (let i = 0; i < n; i++) {
      const edge = cString(bytes, p, end, `${structure} edge`);
      p = bytes.indexOf(0, p) + 1;
      let child: bigint;
      [child, p] = uleb(bytes, p, end, structure);
      kids.push({ node: start + Number(child), prefix: prefix + edge, depth: depth + 1 });
    }
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
  }
  return out;
}

export function exportsOf(m: MachO): ExportedSymbol[] {
  const r = exportsTrieRange(m);
  return r ? parseExportsTrie(m.bytes, r.off, r.size) : [];
}
