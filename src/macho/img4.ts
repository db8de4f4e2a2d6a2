import { FormatError } from '../errors.js';
import {
  type DerChunks, type DerNode, UNIVERSAL, TAG_CLASS_CONTEXT, TAG_CLASS_PRIVATE, MAX_DER_DEPTH,
  readTlv, children, expectUniversal, isUniversal, ia5, integer, boolean, fourccTag,
  tlv, sequence, set, octetString, ia5String, integerValue, booleanValue, concat, join,
} from './der.js';

// Image4 containers (DER), as Apple's firmware and kernelcaches ship them:
//   IM4P = SEQUENCE { IA5 "IM4P", IA5 type, IA5 description, OCTET STRING payload,
//                     [OCTET STRING keybags], [SEQUENCE { INTEGER compression, INTEGER size }],
//                     [[0] SEQUENCE { IA5 "PAYP", SET { properties } }] }
//   IM4M = SEQUENCE { IA5 "IM4M", INTEGER version, SET { MANB }, OCTET STRING signature, certificates }
//   IM4R = SEQUENCE { IA5 "IM4R", SET { properties (BNCN nonce, ...) } }
//   IMG4 = SEQUENCE { IA5 "IMG4", IM4P, [0] IM4M, [1] IM4R }
// A property is a private-class tag whose number is its FourCC, holding SEQUENCE { IA5 name, value }.
// Layout per PyIMG4 and img4lib; the manifest and nonce property names are Apple's.
// Every parse has a matching build, and build(parse(x)) == x for DER input.

export type Img4Value =
  | { type: 'int'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'data'; value: Uint8Array }
  | { type: 'string'; value: string }
  /** A SET of nested properties (MANP, or one component's digests and flags). */
  | { type: 'dict'; value: Img4Property[] }
  /** Anything else, kept as its whole DER encoding. */
  | { type: 'raw'; value: Uint8Array };

export interface Img4Property {
  name: string;
  /** The private tag number; defaults to the FourCC of `name` when building. */
  tag?: number;
  value: Img4Value;
}

export interface Keybag {
  /** 1 = production (GID), 2 = development, per Apple's convention. */
  type: bigint;
  iv: Uint8Array;
  key: Uint8Array;
}

export interface Im4pCompression {
  /** 1 = LZFSE (the only value Apple ships in this field). */
  algorithm: bigint;
  uncompressedSize: bigint;
}

export interface Im4p {
  fourcc: string;
  description: string;
  /** The payload as stored (compressed, maybe encrypted): a subarray of the input. */
  payload: Uint8Array;
  keybags?: Keybag[];
  compression?: Im4pCompression;
  /** PAYP properties. */
  properties?: Img4Property[];
}

export interface Im4m {
  version: bigint;
  /** MANB's properties: MANP (manifest properties) and one dict per component (krnl, dtre, ...). */
  body: Img4Property[];
  signature: Uint8Array;
  /** The certificate chain, kept as its DER encoding (a SEQUENCE of X.509 certificates). */
  certificates?: Uint8Array;
}

export interface Im4r {
  properties: Img4Property[];
}

export interface Img4 {
  im4p: Im4p;
  im4m?: Im4m;
  im4r?: Im4r;
}

function fail(offset: number, structure: string, detail: string): never {
  throw new FormatError(structure, BigInt(offset), detail);
}

/**
 * "IMG4", "IM4P", "IM4M", "IM4R", or undefined when `buf` does not start like an Image4 object:
 * a SEQUENCE whose first element is the IA5String magic. Only the start is looked at, so a
 * truncated file is still recognized (and its parse then reports where it ends).
 */
export function image4Kind(buf: Uint8Array): string | undefined {
  if (buf.length < 8 || buf[0] !== 0x30) return undefined;
  let off = 2;
  if (buf[1]! & 0x80) off += buf[1]! & 0x7f;
  if (off + 6 > buf.length || buf[off] !== 0x16 || buf[off + 1] !== 4) return undefined;
  const kind = String.fromCharCode(...buf.subarray(off + 2, off + 6));
  return ['IMG4', 'IM4P', 'IM4M', 'IM4R'].includes(kind) ? kind : undefined;
}

function topLevel(buf: Uint8Array, magic: string, base: number): DerNode[] {
  const top = readTlv(buf, 0, buf.length, base);
  if (!isUniversal(top, UNIVERSAL.SEQUENCE) || !top.constructed) fail(base, magic, 'expected a SEQUENCE');
  const items = children(top);
  const m = items[0];
  if (!m || !isUniversal(m, UNIVERSAL.IA5String) || ia5(m) !== magic) fail(top.offset, magic, `expected the magic "${magic}"`);
  return items;
}

// ---- properties --------------------------------------------------------------------------------

function parseValue(n: DerNode, depth: number): Img4Value {
  if (n.cls === 0) {
    switch (n.tag) {
      case UNIVERSAL.INTEGER: return { type: 'int', value: integer(n) };
      case UNIVERSAL.BOOLEAN: return { type: 'bool', value: boolean(n) };
      case UNIVERSAL.OCTET_STRING: return { type: 'data', value: n.value };
      case UNIVERSAL.IA5String: return { type: 'string', value: ia5(n) };
      case UNIVERSAL.SET: return { type: 'dict', value: parseProperties(n, depth + 1) };
    }
  }
  return { type: 'raw', value: n.raw };
}

/** The properties in a SET (or any constructed node) of private-tagged name/value pairs. */
export function parseProperties(container: DerNode, depth = 0): Img4Property[] {
  if (depth > MAX_DER_DEPTH) fail(container.offset, 'Image4 property', 'nesting too deep');
  return children(container, depth).map((p) => {
    if (p.cls !== TAG_CLASS_PRIVATE || !p.constructed) fail(p.offset, 'Image4 property', 'expected a private-class tag');
    const seq = children(p, depth)[0];
    const pair = children(expectUniversal(seq, UNIVERSAL.SEQUENCE, 'property body', p.offset), depth);
    const name = ia5(expectUniversal(pair[0], UNIVERSAL.IA5String, 'property name', seq!.offset));
    if (!pair[1] || pair.length > 2) fail(seq!.offset, 'Image4 property', `property ${name} must hold one value`);
    const prop: Img4Property = { name, value: parseValue(pair[1], depth) };
    // Apple's tag number is the name's FourCC; keep any other tag so the property rebuilds exactly.
    if (name.length !== 4 || fourccTag(name) !== p.tag) prop.tag = p.tag;
    return prop;
  });
}

function encodeValue(v: Img4Value): DerChunks | Uint8Array {
  switch (v.type) {
    case 'int': return integerValue(v.value);
    case 'bool': return booleanValue(v.value);
    case 'data': return octetString(v.value);
    case 'string': return ia5String(v.value);
    case 'dict': return set(v.value.map(encodeProperty));
    case 'raw': return v.value;
  }
}

export function encodeProperty(p: Img4Property): DerChunks {
  return tlv(TAG_CLASS_PRIVATE, true, p.tag ?? fourccTag(p.name), sequence([ia5String(p.name), encodeValue(p.value)]));
}

/**
 * Properties as a plain object for display and JSON: nested dicts become nested objects, byte
 * strings (and raw DER) become hex strings, integers stay bigint.
 */
export function propertiesToObject(props: Img4Property[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const p of props) {
    const v = p.value;
    o[p.name] = v.type === 'dict' ? propertiesToObject(v.value)
      : v.type === 'data' || v.type === 'raw' ? Array.from(v.value, (b) => b.toString(16).padStart(2, '0')).join('')
      : v.value;
  }
  return o;
}

/** Find a property by name, e.g. findProperty(im4m.body, 'MANP'). */
export function findProperty(props: Img4Property[] | undefined, name: string): Img4Property | undefined {
  return props?.find((p) => p.name === name);
}

// ---- IM4P --------------------------------------------------------------------------------------

export function parseIm4p(buf: Uint8Array, base = 0): Im4p {
  const items = topLevel(buf, 'IM4P', base);
  const at = items[0]!.offset;
  const type = expectUniversal(items[1], UNIVERSAL.IA5String, 'IM4P type', at);
  const desc = expectUniversal(items[2], UNIVERSAL.IA5String, 'IM4P description', at);
  const payload = expectUniversal(items[3], UNIVERSAL.OCTET_STRING, 'IM4P payload', at);
  const im4p: Im4p = { fourcc: ia5(type), description: ia5(desc), payload: payload.value };
  for (const n of items.slice(4)) {
    if (isUniversal(n, UNIVERSAL.OCTET_STRING) && !im4p.keybags) {
      im4p.keybags = parseKeybags(n);
    } else if (isUniversal(n, UNIVERSAL.SEQUENCE) && !im4p.compression) {
      const [alg, size, ...rest] = children(n);
      if (rest.length) fail(n.offset, 'IM4P compression', 'expected two INTEGERs');
      im4p.compression = {
        algorithm: integer(expectUniversal(alg, UNIVERSAL.INTEGER, 'compression algorithm', n.offset)),
        uncompressedSize: integer(expectUniversal(size, UNIVERSAL.INTEGER, 'uncompressed size', n.offset)),
      };
    } else if (n.cls === TAG_CLASS_CONTEXT && n.tag === 0 && n.constructed && !im4p.properties) {
      const inner = children(n);
      const payp = children(expectUniversal(inner[0], UNIVERSAL.SEQUENCE, 'PAYP', n.offset));
      const magic = expectUniversal(payp[0], UNIVERSAL.IA5String, 'PAYP magic', n.offset);
      if (ia5(magic) !== 'PAYP') fail(magic.offset, 'IM4P properties', 'expected "PAYP"');
      im4p.properties = parseProperties(expectUniversal(payp[1], UNIVERSAL.SET, 'PAYP properties', magic.offset));
    } else {
      fail(n.offset, 'IM4P', `unexpected element (class ${n.cls}, tag ${n.tag})`);
    }
  }
  return im4p;
}

function parseKeybags(n: DerNode): Keybag[] {
  const base = n.offset + n.headerLength;
  const outer = readTlv(n.value, 0, n.value.length, base);
  if (outer.raw.length !== n.value.length) fail(outer.offset, 'IM4P keybags', 'trailing bytes after the keybag SEQUENCE');
  return children(expectUniversal(outer, UNIVERSAL.SEQUENCE, 'keybags', n.offset)).map((kb) => {
    const [t, iv, key, ...rest] = children(expectUniversal(kb, UNIVERSAL.SEQUENCE, 'keybag', outer.offset));
    if (rest.length) fail(kb.offset, 'IM4P keybag', 'expected INTEGER, OCTET STRING, OCTET STRING');
    return {
      type: integer(expectUniversal(t, UNIVERSAL.INTEGER, 'keybag type', kb.offset)),
      iv: expectUniversal(iv, UNIVERSAL.OCTET_STRING, 'keybag IV', kb.offset).value,
      key: expectUniversal(key, UNIVERSAL.OCTET_STRING, 'keybag key', kb.offset).value,
    };
  });
}

/** The DER of an IM4P as chunks (the payload is not copied): write them in order, or join(). */
export function im4pChunks(p: Im4p): DerChunks {
  const parts: (DerChunks | Uint8Array)[] = [ia5String('IM4P'), ia5String(p.fourcc), ia5String(p.description), octetString(p.payload)];
  if (p.keybags) {
    const bags = sequence(p.keybags.map((k) => sequence([integerValue(k.type), octetString(k.iv), octetString(k.key)])));
    parts.push(octetString(join(bags)));
  }
  if (p.compression) parts.push(sequence([integerValue(p.compression.algorithm), integerValue(p.compression.uncompressedSize)]));
  if (p.properties) {
    parts.push(tlv(TAG_CLASS_CONTEXT, true, 0, sequence([ia5String('PAYP'), set(p.properties.map(encodeProperty))])));
  }
  return sequence(parts);
}

export function buildIm4p(p: Im4p): Uint8Array {
  return join(im4pChunks(p));
}

// ---- IM4M / IM4R -------------------------------------------------------------------------------

export function parseIm4m(buf: Uint8Array, base = 0): Im4m {
  const items = topLevel(buf, 'IM4M', base);
  const at = items[0]!.offset;
  const version = integer(expectUniversal(items[1], UNIVERSAL.INTEGER, 'IM4M version', at));
  const body = expectUniversal(items[2], UNIVERSAL.SET, 'IM4M body', at);
  const manb = parseProperties(body);
  const m = findProperty(manb, 'MANB');
  if (!m || m.value.type !== 'dict' || manb.length !== 1) fail(body.offset, 'IM4M', 'expected exactly one MANB property');
  const signature = expectUniversal(items[3], UNIVERSAL.OCTET_STRING, 'IM4M signature', at).value;
  if (items.length > 5) fail(items[5]!.offset, 'IM4M', 'unexpected element after the certificates');
  return { version, body: m.value.value, signature, certificates: items[4]?.raw };
}

export function im4mChunks(m: Im4m): DerChunks {
  const body = set([encodeProperty({ name: 'MANB', value: { type: 'dict', value: m.body } })]);
  const parts: (DerChunks | Uint8Array)[] = [ia5String('IM4M'), integerValue(m.version), body, octetString(m.signature)];
  if (m.certificates) parts.push(m.certificates);
  return sequence(parts);
}

export const buildIm4m = (m: Im4m): Uint8Array => join(im4mChunks(m));

/** The manifest's components (everything in MANB but MANP), each with its properties (DGST, EPRO, ...). */
export function manifestComponents(m: Im4m): { fourcc: string; properties: Img4Property[] }[] {
  return m.body
    .filter((p) => p.name !== 'MANP' && p.value.type === 'dict')
    .map((p) => ({ fourcc: p.name, properties: (p.value as { value: Img4Property[] }).value }));
}

export function parseIm4r(buf: Uint8Array, base = 0): Im4r {
  const items = topLevel(buf, 'IM4R', base);
  const props = expectUniversal(items[1], UNIVERSAL.SET, 'IM4R properties', items[0]!.offset);
  if (items.length > 2) fail(items[2]!.offset, 'IM4R', 'unexpected element');
  return { properties: parseProperties(props) };
}

export function im4rChunks(r: Im4r): DerChunks {
  return sequence([ia5String('IM4R'), set(r.properties.map(encodeProperty))]);
}

export const buildIm4r = (r: Im4r): Uint8Array => join(im4rChunks(r));

// ---- IMG4 --------------------------------------------------------------------------------------

export function parseImg4(buf: Uint8Array, base = 0): Img4 {
  const items = topLevel(buf, 'IMG4', base);
  const p = items[1];
  if (!p) fail(items[0]!.offset, 'IMG4', 'missing IM4P');
  const img4: Img4 = { im4p: parseIm4p(p.raw, p.offset) };
  for (const n of items.slice(2)) {
    if (n.cls !== TAG_CLASS_CONTEXT || !n.constructed || n.tag > 1) fail(n.offset, 'IMG4', 'expected [0] IM4M or [1] IM4R');
    const inner = children(n);
    if (inner.length !== 1) fail(n.offset, 'IMG4', `[${n.tag}] must hold exactly one value`);
    if (n.tag === 0 && !img4.im4m) img4.im4m = parseIm4m(inner[0]!.raw, inner[0]!.offset);
    else if (n.tag === 1 && !img4.im4r) img4.im4r = parseIm4r(inner[0]!.raw, inner[0]!.offset);
    else fail(n.offset, 'IMG4', `duplicate [${n.tag}]`);
  }
  return img4;
}

export function img4Chunks(i: Img4): DerChunks {
  const parts: (DerChunks | Uint8Array)[] = [ia5String('IMG4'), im4pChunks(i.im4p)];
  if (i.im4m) parts.push(tlv(TAG_CLASS_CONTEXT, true, 0, im4mChunks(i.im4m)));
  if (i.im4r) parts.push(tlv(TAG_CLASS_CONTEXT, true, 1, im4rChunks(i.im4r)));
  return sequence(parts);
}

export const buildImg4 = (i: Img4): Uint8Array => join(img4Chunks(i));

export { concat as concatDer };
