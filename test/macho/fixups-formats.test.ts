import { describe, it, expect } from 'vitest';
import { decodeChainedPointer, chainStride } from '../../src/macho/fixups.js';

// Each pointer format's bitfields, packed here straight from the struct declarations in
// mach-o/fixup-chains.h (LSB first), then decoded. Covers formats that no corpus file uses
// (9, 10, 11) and every field of the others.

/** Pack [width, value] fields LSB-first into a 64-bit word, as a C bitfield on a little-endian target. */
function pack(fields: [number, bigint | number][]): bigint {
  let v = 0n;
  let shift = 0n;
  for (const [w, x] of fields) {
    const val = BigInt.asUintN(w, BigInt(x));
    v |= val << shift;
    shift += BigInt(w);
  }
  expect(shift).toBe(64n);
  return v;
}

const BASE = 0xfffffe0007004000n;

describe('chained pointer formats', () => {
  it('strides', () => {
    expect([1, 2, 6, 7, 8, 9, 10, 11, 12].map(chainStride)).toEqual([8, 4, 4, 4, 4, 8, 4, 1, 8]);
  });

  it('dyld_chained_ptr_arm64e_rebase / _bind / _auth_rebase / _auth_bind (formats 1, 7, 9, 10, 12)', () => {
    // struct dyld_chained_ptr_arm64e_rebase { target:43, high8:8, next:11, bind:1, auth:1 }
    const reb = pack([[43, 0x7007014000n], [8, 0x12], [11, 5], [1, 0], [1, 0]]);
    const d1 = decodeChainedPointer(1, reb, BASE);
    expect(d1).toMatchObject({ kind: 'rebase', next: 5, high8: 0x12, target: 0x7007014000n | (0x12n << 56n) });
    // KERNEL / USERLAND: the target is an offset from the image base; FIRMWARE: a vmaddr.
    expect(decodeChainedPointer(7, reb, BASE).target).toBe((BASE + 0x7007014000n) | (0x12n << 56n));
    expect(decodeChainedPointer(9, reb, BASE).target).toBe((BASE + 0x7007014000n) | (0x12n << 56n));
    expect(decodeChainedPointer(10, reb, BASE).target).toBe(0x7007014000n | (0x12n << 56n));
    // struct dyld_chained_ptr_arm64e_auth_rebase { target:32, diversity:16, addrDiv:1, key:2, next:11, bind:1, auth:1 }
    const ar = pack([[32, 0x1234], [16, 0xbeef], [1, 1], [2, 2], [11, 7], [1, 0], [1, 1]]);
    expect(decodeChainedPointer(7, ar, BASE)).toMatchObject({ kind: 'rebase', target: BASE + 0x1234n, auth: { diversity: 0xbeef, addrDiv: true, key: 2 }, next: 7 });
    // struct dyld_chained_ptr_arm64e_bind { ordinal:16, zero:16, addend:19 (signed), next:11, bind:1, auth:1 }
    const b = pack([[16, 300], [16, 0], [19, -8], [11, 1], [1, 1], [1, 0]]);
    expect(decodeChainedPointer(1, b, BASE)).toMatchObject({ kind: 'bind', ordinal: 300, addend: -8n, next: 1 });
    // struct dyld_chained_ptr_arm64e_auth_bind { ordinal:16, zero:16, diversity:16, addrDiv:1, key:2, next:11, bind:1, auth:1 }
    const ab = pack([[16, 9], [16, 0], [16, 0x55aa], [1, 0], [2, 3], [11, 2], [1, 1], [1, 1]]);
    expect(decodeChainedPointer(1, ab, BASE)).toMatchObject({ kind: 'bind', ordinal: 9, auth: { diversity: 0x55aa, addrDiv: false, key: 3 }, next: 2 });
    // struct dyld_chained_ptr_arm64e_bind24 { ordinal:24, zero:8, addend:19, next:11, bind:1, auth:1 }
    const b24 = pack([[24, 0x12345], [8, 0], [19, 16], [11, 3], [1, 1], [1, 0]]);
    expect(decodeChainedPointer(12, b24, BASE)).toMatchObject({ kind: 'bind', ordinal: 0x12345, addend: 16n, next: 3 });
  });

  it('dyld_chained_ptr_64_rebase / _bind (formats 2, 6)', () => {
    // struct dyld_chained_ptr_64_rebase { target:36, high8:8, reserved:7, next:12, bind:1 }
    const r = pack([[36, 0x100003e64n], [8, 0x80], [7, 0], [12, 0xabc], [1, 0]]);
    expect(decodeChainedPointer(2, r, 0x100000000n)).toMatchObject({ kind: 'rebase', target: 0x100003e64n | (0x80n << 56n), next: 0xabc });
    expect(decodeChainedPointer(6, r, 0x100000000n).target).toBe((0x100000000n + 0x100003e64n) | (0x80n << 56n));
    // struct dyld_chained_ptr_64_bind { ordinal:24, addend:8, reserved:19, next:12, bind:1 }
    const b = pack([[24, 77], [8, 200], [19, 0], [12, 4], [1, 1]]);
    expect(decodeChainedPointer(6, b, 0n)).toMatchObject({ kind: 'bind', ordinal: 77, addend: 200n, next: 4 });
  });

  it('dyld_chained_ptr_64_kernel_cache_rebase (formats 8, 11)', () => {
    // { target:30, cacheLevel:2, diversity:16, addrDiv:1, key:2, next:12, isAuth:1 }
    const k = pack([[30, 0x3ffffff0], [2, 1], [16, 0x1111], [1, 1], [2, 1], [12, 0xfff], [1, 1]]);
    for (const f of [8, 11]) {
      expect(decodeChainedPointer(f, k, BASE)).toMatchObject({ kind: 'rebase', target: BASE + 0x3ffffff0n, cacheLevel: 1, auth: { diversity: 0x1111, addrDiv: true, key: 1 }, next: 0xfff });
    }
    const plain = pack([[30, 0x4000], [2, 0], [16, 0], [1, 0], [2, 0], [12, 0], [1, 0]]);
    expect(decodeChainedPointer(8, plain, BASE)).toMatchObject({ target: BASE + 0x4000n, auth: undefined, next: 0 });
  });
});
