import path from 'node:path';
import { AsmError, assemble } from './arm64-asm.js';
import { compileWord, type WordPattern } from './arm64-pattern.js';
import { rangeSane, type VersionRange } from './versions.js';
import { schemaValidator, YamlSource } from './yaml-source.js';

// A patch set file (patches/<set>.yaml, schemas/patch.schema.json) turned into checked, compiled
// patches. Every problem found on the way carries the file:line:column of its YAML node.

export type Matcher = (
  | { kind: 'instructions'; words: WordPattern[] }
  | { kind: 'bytes'; find: Uint8Array; mask: Uint8Array }
  | { kind: 'string'; text: string; partial: boolean; at: 'xref' | 'function' }
  | { kind: 'symbol'; name: string }
) & {
  /** Bytes from the match to where the action writes (the matcher's own, else the patch's). */
  offset: number;
  /** What to write when this matcher matched (the matcher's own, else the patch's). */
  action: Action;
};

export type Action =
  | { kind: 'replace'; bytes: Uint8Array; mask: Uint8Array | null }
  | { kind: 'instructions'; lines: string[] }
  | { kind: 'nop'; count: number }
  | { kind: 'return'; value: bigint; width: 32 | 64 }
  | { kind: 'pointer'; to: string };

export interface Patch {
  id: string;
  set: string;
  /** Where the patch is written, "patches/x.yaml:12". */
  source: string;
  reason: string;
  verified: 'samples-only' | 'real-kernel';
  target: string;
  segment?: string;
  section?: string;
  base?: string;
  limit: number;
  when: { darwin?: VersionRange; macos?: VersionRange; arch?: ('arm64' | 'arm64e')[] };
  required: boolean;
  matchers: Matcher[];
  expect: { op: 'exactly' | 'atLeast'; n: number };
  skip: number;
  count: number;
  action: Action;
}

export interface PatchSet {
  name: string;
  file: string;
  description: string;
  patches: Patch[];
}

/** A path as a person would type it here: relative to the working directory when under it. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

function hexBytes(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
}

interface RawMatcher { instructions?: string[]; bytes?: string; mask?: string; string?: string; partial?: boolean; at?: 'xref' | 'function'; symbol?: string; offset?: number; action?: RawAction }
interface RawAction { replace?: string; mask?: string; instructions?: string[]; nop?: number; return?: number | string; width?: 32 | 64; pointer?: string }
interface RawPatch {
  id: string; reason: string; verified: Patch['verified']; target: string; segment?: string; section?: string; base?: string;
  limit?: number; when?: Patch['when']; required?: boolean; match: RawMatcher | RawMatcher[]; offset?: number;
  expect?: number | { exactly?: number; atLeast?: number }; skip?: number; count?: number; action: RawAction;
}

function compileMatcher(src: YamlSource, where: (string | number)[], m: RawMatcher, patchOffset: number, patchAction: Action): Matcher | null {
  const offset = m.offset ?? patchOffset;
  const action = m.action ? compileAction(src, [...where, 'action'], m.action) : patchAction;
  if (!action) return null;
  if (m.instructions) {
    const words: WordPattern[] = [];
    let ok = true;
    m.instructions.forEach((t, i) => {
      try {
        words.push(compileWord(t));
      } catch (e) {
        if (!(e instanceof AsmError)) throw e;
        src.problem([...where, 'instructions', i], `instruction pattern "${t}": ${e.message}`);
        ok = false;
      }
    });
    if (ok && words.every((w) => w.mask === 0)) {
      src.problem([...where, 'instructions'], 'an instruction pattern made only of wildcards matches everywhere');
      ok = false;
    }
    return ok ? { kind: 'instructions', words, offset, action } : null;
  }
  if (m.bytes !== undefined) {
    const find = hexBytes(m.bytes);
    const mask = m.mask !== undefined ? hexBytes(m.mask) : new Uint8Array(find.length).fill(0xff);
    if (mask.length !== find.length) {
      src.problem([...where, 'mask'], `mask has ${mask.length} bytes but bytes has ${find.length}`);
      return null;
    }
    return { kind: 'bytes', find, mask, offset, action };
  }
  if (m.string !== undefined) return { kind: 'string', text: m.string, partial: m.partial ?? false, at: m.at ?? 'function', offset, action };
  return { kind: 'symbol', name: m.symbol!, offset, action };
}

function compileAction(src: YamlSource, where: (string | number)[], a: RawAction): Action | null {
  if (a.replace !== undefined) {
    const bytes = hexBytes(a.replace);
    const mask = a.mask !== undefined ? hexBytes(a.mask) : null;
    if (mask && mask.length !== bytes.length) {
      src.problem([...where, 'mask'], `mask has ${mask.length} bytes but replace has ${bytes.length}`);
      return null;
    }
    return { kind: 'replace', bytes, mask };
  }
  if (a.instructions) {
    let ok = true;
    a.instructions.forEach((t, i) => {
      // Symbols are resolved when the patch is applied; here they only need to be well formed.
      try {
        assemble(t, 0n, () => 0n);
      } catch (e) {
        if (!(e instanceof AsmError)) throw e;
        if (/out of range/.test(e.message)) return;
        src.problem([...where, 'instructions', i], `instruction "${t}": ${e.message}`);
        ok = false;
      }
    });
    return ok ? { kind: 'instructions', lines: a.instructions } : null;
  }
  if (a.nop !== undefined) return { kind: 'nop', count: a.nop };
  if (a.return !== undefined) {
    const s = String(a.return);
    const value = s.startsWith('-') ? -BigInt(s.slice(1)) : BigInt(s);
    const width = a.width ?? 64;
    if (value < -(1n << BigInt(width - 1)) || value >= 1n << BigInt(width)) {
      src.problem([...where, 'return'], `return value ${s} does not fit ${width} bits`);
      return null;
    }
    return { kind: 'return', value, width };
  }
  return { kind: 'pointer', to: a.pointer! };
}

function compilePatch(src: YamlSource, set: string, i: number, p: RawPatch): Patch | null {
  const where = ['patches', i];
  const [line] = src.at(where);
  let ok = true;
  for (const key of ['darwin', 'macos'] as const) {
    const r = p.when?.[key];
    if (r && !rangeSane(r)) {
      src.problem([...where, 'when', key], `${key} range ${r.min}..${r.max} is empty (min is above max)`);
      ok = false;
    }
  }
  if (p.section !== undefined && p.segment === undefined) {
    src.problem([...where, 'section'], 'section needs segment too (sections are named within a segment)');
    ok = false;
  }
  const action = compileAction(src, [...where, 'action'], p.action);
  if (!action) return null;
  const rawMatchers = Array.isArray(p.match) ? p.match : [p.match];
  const matchers: Matcher[] = [];
  rawMatchers.forEach((m, j) => {
    const c = compileMatcher(src, Array.isArray(p.match) ? [...where, 'match', j] : [...where, 'match'], m, p.offset ?? 0, action);
    if (c) matchers.push(c);
    else ok = false;
  });
  if (matchers.some((m) => m.action.kind !== 'replace' && m.action.kind !== 'pointer' && m.offset % 4 !== 0)) {
    src.problem([...where, 'offset'], 'the offset is not a multiple of 4, but the action writes instructions');
    ok = false;
  }
  if (!ok || !action) return null;
  const e = p.expect;
  const expect: Patch['expect'] = typeof e === 'number' ? { op: 'exactly', n: e }
    : e?.atLeast !== undefined ? { op: 'atLeast', n: e.atLeast } : { op: 'exactly', n: e?.exactly ?? 1 };
  return {
    id: p.id, set, source: `${displayPath(src.file)}:${line}`, reason: p.reason.trim(), verified: p.verified, target: p.target,
    segment: p.segment, section: p.section, base: p.base, limit: p.limit ?? 0, when: p.when ?? {},
    required: p.required ?? true, matchers, expect, skip: p.skip ?? 0, count: p.count ?? 0, action,
  };
}

/** Load and check one patch set; problems are left in `src.problems`. */
export function loadPatchSet(src: YamlSource): PatchSet | null {
  if (!src.validate(schemaValidator('patch'), 'patch set')) return null;
  const raw = src.data() as { set: string; description: string; patches: RawPatch[] };
  const base = path.basename(src.file).replace(/\.ya?ml$/, '');
  if (raw.set !== base) src.problem(['set'], `set is "${raw.set}" but the file is named ${base}.yaml (profiles find sets by file name)`);
  const ids = new Map<string, number>();
  const patches: Patch[] = [];
  raw.patches.forEach((p, i) => {
    const prev = ids.get(p.id);
    if (prev !== undefined) src.problem(['patches', i, 'id'], `patch id "${p.id}" is already used by patch ${prev + 1} of this set`);
    ids.set(p.id, i);
    const c = compilePatch(src, raw.set, i, p);
    if (c) patches.push(c);
  });
  return src.ok ? { name: raw.set, file: src.file, description: raw.description, patches } : null;
}
