// Fletcher-64 object checksums (APFS Reference, "Object Checksums") and the CRC-32C that hashes
// directory-entry names.

const MOD = 0xffffffff;

/** Fletcher-64 over `data` (whole 32-bit little-endian words), as stored in o_cksum. */
export function fletcher64(data: Uint8Array): bigint {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let sum1 = 0;
  let sum2 = 0;
  const words = data.byteLength >>> 2;
  for (let i = 0; i < words; i++) {
    sum1 += dv.getUint32(i * 4, true);
    sum2 += sum1;
    // Keep both sums exact in doubles: reduce well before 2^53.
    if ((i & 1023) === 1023) { sum1 %= MOD; sum2 %= MOD; }
  }
  sum1 %= MOD;
  sum2 %= MOD;
  const c1 = MOD - ((sum1 + sum2) % MOD);
  const c2 = MOD - ((sum1 + c1) % MOD);
  return (BigInt(c2) << 32n) | BigInt(c1);
}

/** Fill in o_cksum of an object occupying all of `obj`. */
export function sealObject(obj: Uint8Array): void {
  const sum = fletcher64(obj.subarray(8));
  new DataView(obj.buffer, obj.byteOffset, 8).setBigUint64(0, sum, true);
}

export function objectChecksumOk(obj: Uint8Array): boolean {
  return new DataView(obj.buffer, obj.byteOffset, 8).getBigUint64(0, true) === fletcher64(obj.subarray(8));
}

const CRC32C_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C update without the final inversion (APFS hashes continue from 0xFFFFFFFF). */
export function crc32c(crc: number, bytes: Uint8Array): number {
  let c = crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = (CRC32C_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)) >>> 0;
  return c;
}
