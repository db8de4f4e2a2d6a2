import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';

// Patch and profile files are YAML read with source positions, so every problem is reported as
// file:line:column and a plain sentence — by the schema (ajv) or by the checks that follow it.

export interface Problem {
  file: string;
  line: number;
  column: number;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.message}`;
}

/** The installed package's root (holds schemas/, patches/, profiles/, layouts/). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'm1prep') return dir;
    } catch { /* keep climbing */ }
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the m1prep package root');
}

export class YamlSource {
  readonly problems: Problem[] = [];
  readonly doc: Document;
  private readonly lines = new LineCounter();

  constructor(readonly file: string, text: string) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    for (const e of this.doc.errors) {
      const [line, column] = this.lineCol(e.pos[0]);
      this.problems.push({ file, line, column, message: `YAML syntax: ${e.message.split('\n')[0]}` });
    }
  }

  static read(file: string): YamlSource {
    return new YamlSource(file, readFileSync(file, 'utf8'));
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  data(): unknown {
    return this.doc.toJS({ maxAliasCount: 100 });
  }

  private lineCol(offset: number): [number, number] {
    const p = this.lines.linePos(offset);
    return [p.line, p.col];
  }

  /** Position of the value at a path (keys and indexes); for a missing key, its parent's. */
  at(pathParts: (string | number)[], key = false): [number, number] {
    for (let n = pathParts.length; n >= 0; n--) {
      const parts = pathParts.slice(0, n);
      if (key && n === pathParts.length && n > 0) {
        // Point at the key itself (for "unknown property" problems).
        const parent = parts.length > 1 ? this.doc.getIn(parts.slice(0, -1), true) : this.doc.contents;
        const items = (parent as { items?: { key?: unknown }[] } | null)?.items;
        const pair = items?.find((it) => isNode(it.key) && (it.key as { value?: unknown }).value === parts[parts.length - 1]);
        if (pair && isNode(pair.key) && pair.key.range) return this.lineCol(pair.key.range[0]);
      }
      const node = parts.length === 0 ? this.doc.contents : this.doc.getIn(parts, true);
      if (isNode(node) && node.range) return this.lineCol(node.range[0]);
    }
    return [1, 1];
  }

  problem(pathParts: (string | number)[], message: string, key = false): void {
    const [line, column] = this.at(pathParts, key);
    this.problems.push({ file: this.file, line, column, message });
  }

  /** Validate against a JSON schema; returns true when valid. */
  validate(validator: ValidateFunction, what: string): boolean {
    if (!this.ok) return false;
    if (validator(this.data())) return true;
    for (const e of pickErrors(validator.errors ?? [])) {
      const parts = e.instancePath.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
      const { message, extraKey } = describe(e, what);
      this.problem(extraKey ? [...parts, extraKey] : parts, message, Boolean(extraKey));
    }
    this.problems.sort((a, b) => a.line - b.line || a.column - b.column);
    return false;
  }
}

/** Keep the most useful error per location: a oneOf failure explains less than the branch errors. */
function pickErrors(errors: ErrorObject[]): ErrorObject[] {
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    const list = byPath.get(e.instancePath) ?? [];
    list.push(e);
    byPath.set(e.instancePath, list);
  }
  const out: ErrorObject[] = [];
  for (const [p, list] of byPath) {
    // Errors under a deeper path already explain a failed oneOf/anyOf here.
    const deeper = [...byPath.keys()].some((q) => q !== p && q.startsWith(p + '/'));
    const plain = list.filter((e) => !['oneOf', 'anyOf', 'not', 'if', 'required', 'type'].includes(e.keyword) || !e.schemaPath.includes('/oneOf/'));
    let direct = plain.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf');
    // "must be object" next to an array's own problem (another branch of a oneOf) adds nothing.
    if (direct.some((e) => e.keyword !== 'type')) direct = direct.filter((e) => e.keyword !== 'type');
    if (direct.length) out.push(...dedupe(direct));
    else if (!deeper) out.push(list.find((e) => e.keyword === 'oneOf') ?? list[0]!);
  }
  return out;
}

function dedupe(list: ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  return list.filter((e) => {
    const k = `${e.keyword}:${e.message}:${JSON.stringify(e.params)}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function describe(e: ErrorObject, what: string): { message: string; extraKey?: string } {
  const where = e.instancePath === '' ? what : e.instancePath.split('/').slice(1).join('.');
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { message: `${where}: unknown property "${String(p.additionalProperty)}"`, extraKey: String(p.additionalProperty) };
    case 'required':
      return { message: `${where}: "${String(p.missingProperty)}" is required` };
    case 'enum':
      return { message: `${where} must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'pattern': {
      const key = where.split('.').pop() ?? '';
      if (key === 'id' || key === 'set' || /patchSets\.\d+$/.test(where)) return { message: `${where} must be lower-case letters, digits and dashes (like sep-wait)` };
      if (key === 'min' || key === 'max') return { message: `${where} must be a version like 21, 21.4 or 21.4.1` };
      if (key === 'macos') return { message: `${where} must be a macOS version like 12.3 or 13.x` };
      if (key === 'bytes' || key === 'mask' || key === 'replace') return { message: `${where} must be hex byte pairs, like "1f 20 03 d5"` };
      return { message: `${where} ${e.message ?? 'is invalid'}` };
    }
    case 'type': {
      // Ajv says "must be string"; a person reads "must be a string".
      const kinds: Record<string, string> = { string: 'a string', integer: 'a whole number', number: 'a number', boolean: 'true or false', array: 'a list', object: 'a mapping (key: value lines)', null: 'empty' };
      const t = String(p.type);
      return { message: `${where} must be ${t.split(',').map((k) => kinds[k] ?? k).join(' or ')}` };
    }
    case 'oneOf':
      if (/expect$/.test(where)) return { message: `${where} must be a count N, { exactly: N } or { atLeast: N }` };
      if (/match(\.\d+)?$/.test(where)) return { message: `${where} must have exactly one of instructions, bytes, string or symbol (mask goes only with bytes)` };
      if (/action$/.test(where)) return { message: `${where} must have exactly one of replace, instructions, nop, return or pointer (mask goes only with replace, width only with return)` };
      return { message: `${where} has the wrong shape` };
    default:
      return { message: `${where} ${e.message ?? 'is invalid'}` };
  }
}

const validators = new Map<string, ValidateFunction>();

/** The compiled validator of schemas/<name>.schema.json (the same file editors use). */
export function schemaValidator(name: 'patch' | 'profile'): ValidateFunction {
  let v = validators.get(name);
  if (!v) {
    const schema = JSON.parse(readFileSync(path.join(packageRoot(), 'schemas', `${name}.schema.json`), 'utf8')) as object;
    v = new Ajv({ allErrors: true, strict: false }).compile(schema);
    validators.set(name, v);
  }
  return v;
}
