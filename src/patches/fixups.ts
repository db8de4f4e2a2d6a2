import { PatchError } from '../errors.js';
import {
  DYLD_CHAINED_PTR_64, DYLD_CHAINED_PTR_64_KERNEL_CACHE, DYLD_CHAINED_PTR_64_OFFSET, DYLD_CHAINED_PTR_ARM64E,
  DYLD_CHAINED_PTR_ARM64E_FIRMWARE, DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE, type ChainedFixup,
} from '../macho/fixups.js';

// Pointer slots in a chained-fixup image hold an encoded chain entry, not an address
// (mach-o/fixup-chains.h). A patch that redirects a pointer re-encodes only the entry's target
// field and keeps its chain link (`next`), authentication key, diversity and cache level, or the
// kernel's fixup walker would follow a broken chain or sign with the wrong key.

function setBits(v: bigint, lo: number, n: number, x: bigint): bigint {
  const m = ((1n << BigInt(n)) - 1n) << BigInt(lo);
  return (v & ~m) | ((x << BigInt(lo)) & m);
}

/** The new raw value of a rebase entry pointing at `newTarget`, everything else kept. */
export function reencodeTarget(e: ChainedFixup, newTarget: bigint, base: bigint): bigint {
  const where = `pointer slot at 0x${e.address.toString(16)}`;
  if (e.kind === 'bind') throw new PatchError(`${where} is a bind (an import), not a rebase: m1prep re-encodes only rebases`);
  const fit = (x: bigint, n: number) => {
    if (x < 0n || x >= 1n << BigInt(n)) throw new PatchError(`${where}: target 0x${newTarget.toString(16)} does not fit the ${n}-bit target field of chained-fixup format ${e.format}`);
    return x;
  };
  const low56 = newTarget & ((1n << 56n) - 1n);
  const high8 = newTarget >> 56n;
  switch (e.format) {
    case DYLD_CHAINED_PTR_64_KERNEL_CACHE:
    case DYLD_CHAINED_PTR_X86_64_KERNEL_CACHE:
      return setBits(e.raw, 0, 30, fit(newTarget - base, 30));
    case DYLD_CHAINED_PTR_64:
      return setBits(setBits(e.raw, 0, 36, fit(low56, 36)), 36, 8, high8);
    case DYLD_CHAINED_PTR_64_OFFSET:
      // An offset from the image base; the entry's high8 (a tag, usually 0) is kept.
      return setBits(e.raw, 0, 36, fit(newTarget - base, 36));
    default: {
      // The arm64e formats: authenticated rebases carry a 32-bit offset from the image base;
      // plain ones 43 bits (a vmaddr for ARM64E / ARM64E_FIRMWARE, an offset for the others).
      if (e.auth) return setBits(e.raw, 0, 32, fit(newTarget - base, 32));
      const absolute = e.format === DYLD_CHAINED_PTR_ARM64E || e.format === DYLD_CHAINED_PTR_ARM64E_FIRMWARE;
      if (absolute) return setBits(setBits(e.raw, 0, 43, fit(low56, 43)), 43, 8, high8);
      return setBits(e.raw, 0, 43, fit(newTarget - base, 43));
    }
  }
}
