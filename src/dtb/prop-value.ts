// Typed property values shared by the ADT (little-endian cells) and the FDT (big-endian cells):
// inferring a readable type for display/JSON, and encoding typed values back to exact bytes.
// Every inferred type re-encodes to the same bytes, so JSON -> tree is byte-identical.

export type ValueType = 'empty' | 'string' | 'strings' | 'u32' | 'u32[]' | 'u64' | 'u64[]' | 'bytes';

export interface TypedValue {
  type: ValueType;
  /** string | string[] | bigint | bigint[] | hex string | undefined (empty) */
  value?: string | string[] | bigint | bigint[];
}

export type Endian = 'le' | 'be';

const latin1 = new TextDecoder('latin1');

function printable(v: Uint8Array, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = v[i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** NUL-terminated printable text, one piece or several. */
function asStrings(v: Uint8Array): string[] | undefined {
  if (v.length < 2 || v[v.length - 1] !== 0) return undefined;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < v.length; i++) {
    if (v[i] === 0) {
      if (!printable(v, start, i)) return undefined;
      out.push(latin1.decode(v.subarray(start, i)));
      start = i + 1;
    }
  }
  return out;
}

function words(v: Uint8Array, size: 4 | 8, endian: Endian): bigint[] {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const le = endian === 'le';
  const out: bigint[] = [];
  for (let i = 0; i + size <= v.length; i += size) out.push(size === 4 ? BigInt(dv.getUint32(i, le)) : dv.getBigUint64(i, le));
  return out;
}

export function toHex(v: Uint8Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

/**
 * A readable type for a value. `wide` says the property is known to hold 64-bit numbers (ADT reg,
 * ranges, *-reg, memory-map entries).
 */
export function inferValue(v: Uint8Array, endian: Endian, wide: boolean): TypedValue {
  if (v.length === 0) return { type: 'empty' };
  const s = asStrings(v);
  if (s) return s.length === 1 ? { type: 'string', value: s[0]! } : { type: 'strings', value: s };
  if (wide && v.length % 8 === 0) return { type: 'u64[]', value: words(v, 8, endian) };
  if (v.length === 4) return { type: 'u32', value: words(v, 4, endian)[0]! };
  if (v.length % 4 === 0 && v.length <= 1024) return { type: 'u32[]', value: words(v, 4, endian) };
  return { type: 'bytes', value: toHex(v) };
}

function numbers(t: TypedValue, what: string): bigint[] {
  const raw = Array.isArray(t.value) ? t.value : [t.value];
  return raw.map((x) => {
    const n = typeof x === 'bigint' ? x : typeof x === 'number' ? BigInt(x) : typeof x === 'string' && /^(0x[0-9a-f_]+|\d+)$/i.test(x) ? BigInt(x.replace(/_/g, '')) : undefined;
    if (n === undefined) throw new TypeError(`${what}: ${JSON.stringify(String(x))} is not a number`);
    return n;
  });
}

/** Encode a typed value; throws TypeError with `what` in the message when it does not fit its type. */
export function encodeValue(t: TypedValue, endian: Endian, what: string): Uint8Array {
  const le = endian === 'le';
  switch (t.type) {
    case 'empty':
      return new Uint8Array(0);
    case 'string':
    case 'strings': {
      const list = t.type === 'string' ? [t.value] : t.value;
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) throw new TypeError(`${what}: ${t.type} needs text`);
      const parts = (list as string[]).map((x) => x + '\0').join('');
      const out = new Uint8Array(parts.length);
      for (let i = 0; i < parts.length; i++) {
        const c = parts.charCodeAt(i);
        if (c > 0xff) throw new TypeError(`${what}: character U+${c.toString(16)} does not fit a byte`);
        out[i] = c;
      }
      return out;
    }
    case 'u32':
    case 'u32[]':
    case 'u64':
    case 'u64[]': {
      const size = t.type.startsWith('u32') ? 4 : 8;
      const ns = numbers(t, what);
      const out = new Uint8Array(ns.length * size);
      const dv = new DataView(out.buffer);
      ns.forEach((n, i) => {
        if (n < 0n || n >= 1n << BigInt(size * 8)) throw new TypeError(`${what}: ${n} does not fit in ${size * 8} bits`);
        if (size === 4) dv.setUint32(i * 4, Number(n), le);
        else dv.setBigUint64(i * 8, n, le);
      });
      return out;
    }
    case 'bytes': {
      const h = typeof t.value === 'string' ? t.value.replace(/[\s:_]/g, '') : '';
      if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new TypeError(`${what}: bytes must be an even number of hex digits`);
      return new Uint8Array(Buffer.from(h, 'hex'));
    }
    default:
      throw new TypeError(`${what}: unknown value type ${JSON.stringify((t as TypedValue).type)}`);
  }
}

/** One-line rendering: "text", "a", "b", <0x1 0x2>, [01 02], or nothing. */
export function formatValue(t: TypedValue): string {
  const hx = (n: bigint) => '0x' + n.toString(16);
  switch (t.type) {
    case 'empty':
      return '';
    case 'string':
      return JSON.stringify(t.value);
    case 'strings':
      return (t.value as string[]).map((x) => JSON.stringify(x)).join(', ');
    case 'u32':
    case 'u64':
      return `<${hx(t.value as bigint)}>`;
    case 'u32[]':
    case 'u64[]':
      return `<${(t.value as bigint[]).map(hx).join(' ')}>`;
    case 'bytes': {
      const h = t.value as string;
      const shown = h.length > 128 ? h.slice(0, 128) : h;
      return `[${shown.replace(/(..)(?!$)/g, '$1 ')}${h.length > 128 ? ` ... (${h.length / 2} bytes)` : ''}]`;
    }
  }
}
