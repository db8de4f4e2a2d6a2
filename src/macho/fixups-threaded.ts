import { FormatError } from '../errors.js';
import { u64 } from './macho-bytes.js';
import { headerVmaddr, segmentForVm, type MachO } from './macho.js';
import { decodeBinds, type ThreadedBinds } from './dyld-info.js';
import { DYLD_CHAINED_PTR_ARM64E, decodeChainedPointer, type ChainedFixup } from './fixups.js';

// arm64e images from before LC_DYLD_CHAINED_FIXUPS (iOS 12-13, macOS 11 system binaries) use
// "threaded" binds: LC_DYLD_INFO's bind stream builds an ordinal table (BIND_OPCODE_THREADED) and
// names chain starts (BIND_SUBOPCODE_THREADED_APPLY); each chain is DYLD_CHAINED_PTR_ARM64E
// entries, 8-byte stride, running until next == 0 (mach-o/loader.h, mach-o/fixup-chains.h).

export interface ThreadedFixups {
  table: ThreadedBinds['table'];
  fixups: ChainedFixup[];
}

export function walkThreadedFixups(m: MachO): ThreadedFixups | undefined {
  const t: ThreadedBinds = { table: [], starts: [] };
  decodeBinds(m, 'bind', t);
  if (t.starts.length === 0) return undefined;
  const base = headerVmaddr(m) ?? 0n;
  const fixups: ChainedFixup[] = [];
  const seen = new Set<bigint>();
  for (const start of t.starts) {
    let addr = start;
    const seg = segmentForVm(m, start);
    if (!seg) throw new FormatError('threaded bind chain', start, 'chain start outside every segment');
    // A chain stays in its segment; each link moves forward, so it has at most filesize/8 links.
    for (let guard = 0n; ; guard++) {
      if (addr < seg.vmaddr || addr + 8n > seg.vmaddr + seg.filesize) throw new FormatError('threaded bind chain', addr, `chain runs out of segment ${seg.segname}`);
      if (seen.has(addr)) throw new FormatError('threaded bind chain', addr, 'chains overlap (loop)');
      seen.add(addr);
      const fileOffset = Number(seg.fileoff + (addr - seg.vmaddr));
      const raw = u64(m.bytes, fileOffset);
      const d = decodeChainedPointer(DYLD_CHAINED_PTR_ARM64E, raw, base);
      if (d.kind === 'bind' && d.ordinal! >= t.table.length) throw new FormatError('threaded bind chain', BigInt(fileOffset), `bind ordinal ${d.ordinal} beyond the ${t.table.length}-entry table`);
      fixups.push({ ...d, address: addr, fileOffset, segIndex: m.segments.indexOf(seg) });
      if (d.next === 0) break;
      addr += BigInt(d.next) * 8n;
      if (guard > seg.filesize / 8n) throw new FormatError('threaded bind chain', addr, 'chain longer than its segment');
    }
  }
  return { table: t.table, fixups };
}
