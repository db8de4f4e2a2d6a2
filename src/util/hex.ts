// JSON output convention: every 64-bit value is a hex string "0x...".
export function hex(v: bigint | number): string {
  return '0x' + BigInt(v).toString(16);
}

/** JSON.stringify that turns bigints into "0x..." strings and Uint8Arrays into hex. */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === 'bigint') return hex(v);
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
      return v;
    },
    indent,
  );
}
