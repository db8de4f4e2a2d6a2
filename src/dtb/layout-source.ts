import YAML, { isNode, type Document } from 'yaml';
import { FormatError } from '../errors.js';

// Locating values of a YAML document, so that an error in a data file (layout, edits) names the
// byte offset and line of the offending key, not just a path.

export type YamlPath = (string | number)[];

export interface YamlSource {
  doc: Document;
  text: string;
  file?: string;
}

/** Parse YAML 1.1 (so 0x2_3b10_0000 is a number) with every integer as a bigint. */
export function parseYamlSource(structure: string, text: string, file?: string): { src: YamlSource; value: unknown } {
  const doc = YAML.parseDocument(text, { version: '1.1', intAsBigInt: true, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const off = err.pos[0];
    throw new FormatError(structure, BigInt(off), `${lineOf(text, off)}${err.message.split('\n')[0]}`, file);
  }
  return { src: { doc, text, file }, value: doc.toJS() };
}

function lineOf(text: string, offset: number): string {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return `line ${line}: `;
}

/** Byte offset of the node at `path` (or of its nearest existing parent). */
export function offsetOf(src: YamlSource, path: YamlPath): number {
  for (let n = path.length; n >= 0; n--) {
    const node = src.doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return 0;
}

/** A FormatError pointing at `path` in the YAML source. */
export function yamlError(structure: string, src: YamlSource, path: YamlPath, detail: string): FormatError {
  const off = offsetOf(src, path);
  return new FormatError(structure, BigInt(off), `${lineOf(src.text, off)}${detail}`, src.file);
}

/** Path as written in messages: clusters[1].cpus[0].implReg */
export function pathText(path: YamlPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Bigints to "0x..." strings (for JSON-schema validation, which knows no bigint). */
export function bigintsToHex(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : '0x' + v.toString(16);
  if (Array.isArray(v)) return v.map(bigintsToHex);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bigintsToHex(x)]));
  return v;
}

/** A u64 written as an integer or a "0x..." string. */
export function toU64(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string') return BigInt(v.replace(/_/g, ''));
  throw new TypeError(`not a number: ${String(v)}`);
}
