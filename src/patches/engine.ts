import { PatchError } from '../errors.js';
import { actionBytes, positionIndependent, type Resolver, type Site } from './actions.js';
import { materialize } from './arm64-asm.js';
import type { WordPattern } from './arm64-pattern.js';
import type { ChainedFixup } from '../macho/fixups.js';
import type { Matcher, Patch } from './patch-set.js';
import { nearestBytes, nearestWords, scanBytes, scanWords, type BytesQuery, type NearMiss, type WordsQuery } from './scan.js';
import { offsetToVm, scopeRanges, vmToOffset, type Collection, type PatchTarget, type Range } from './target.js';
import { formatRange, inRange } from './versions.js';
import { findCString, functionStart, scanXrefs, type XrefQuery } from './xref.js';

// The engine: decide which patches apply (conditions, exclusions), find every matcher's matches
// (instruction patterns and xrefs batched per range, one pass each), check the expected count,
// compute each edit's bytes before/after. Nothing is written here: applyOutcomes() makes the
// patched copy only when no required patch failed.

export type PatchStatus = 'applied' | 'already-applied' | 'not-matched' | 'failed' | 'skipped-condition' | 'excluded';

export interface Edit {
  offset: number;
  vmaddr: bigint;
  before: Uint8Array;
  after: Uint8Array;
}

export interface Candidate {
  vmaddr: bigint;
  offset: number;
  /** What agreed and what did not, in words. */
  detail: string;
  /** For instruction patterns: the word found where the pattern differed, and the pattern text. */
  word?: number;
  expected?: string;
}

export interface PatchOutcome {
  patch: Patch;
  status: PatchStatus;
  /** Why skipped / failed / not matched, in a sentence. */
  note?: string;
  /** Index of the matcher that matched (alternatives in order). */
  matcher?: number;
  /** Number of matches in scope. */
  matches: number;
  edits: Edit[];
  /** The searched ranges: "com.apple.kernel __TEXT_EXEC,__text 0x...-0x...". */
  scope: string[];
  nearest: Candidate[];
}

export interface RunContext {
  /** macOS version of the profile (for `when.macos`). */
  macos?: string;
  exclude?: ReadonlySet<string>;
}

interface Found {
  offsets: number[];
  /** Partial-match hints gathered while looking (xref / symbol failures). */
  hint?: string;
}

interface PendingMatcher {
  matcher: Matcher;
  ranges: Range[];
  words?: WordsQuery[];
  bytes?: BytesQuery[];
  xrefs?: { query: XrefQuery; strings: bigint[] }[];
  found?: Found;
}

function describeRanges(t: PatchTarget, ranges: Range[]): string[] {
  return ranges.map((r) => `${t.id} ${r.label} 0x${r.vmaddr.toString(16)}-0x${(r.vmaddr + BigInt(r.end - r.start)).toString(16)}`);
}

/** Ranges a patch searches: its segment/section scope, from its base symbol on, up to limit bytes. */
function patchRanges(p: Patch, t: PatchTarget, codeOnly: boolean): Range[] | string {
  let ranges = scopeRanges(t, p.segment, p.section, codeOnly);
  if (ranges.length === 0) {
    return `${t.id} has no ${p.section ? `section ${p.segment},${p.section}` : p.segment ? `segment ${p.segment}` : codeOnly ? 'code' : 'segments'}`;
  }
  if (p.base !== undefined) {
    const vm = t.symbols.get(p.base);
    if (vm === undefined) return `symbol ${p.base} (base) is not in ${t.id}'s symbol table`;
    const off = vmToOffset(t, vm);
    const r = ranges.find((x) => off !== undefined && Number(off) >= x.start && Number(off) < x.end);
    if (!r || off === undefined) return `base ${p.base} (0x${vm.toString(16)}) is outside the scope`;
    ranges = [{ start: Number(off), end: r.end, vmaddr: vm, label: `${r.label} from ${p.base}` }];
  }
  if (p.limit > 0) {
    let left = p.limit;
    const clipped: Range[] = [];
    for (const r of ranges) {
      if (left <= 0) break;
      const end = Math.min(r.end, r.start + left);
      clipped.push({ ...r, end });
      left -= end - r.start;
    }
    ranges = clipped;
  }
  return ranges;
}

function makeResolver(c: Collection, t: PatchTarget): Resolver {
  let chains: Map<number, ChainedFixup> | undefined;
  return {
    symbol(name) {
      const own = t.symbols.get(name);
      if (own !== undefined) return own;
      for (const other of c.targets.values()) {
        const v = other.symbols.get(name);
        if (v !== undefined) return v;
      }
      return undefined;
    },
    chainEntry(offset) {
      chains ??= new Map(c.chains().map((e) => [e.fileOffset, e]));
      return chains.get(offset);
    },
  };
}

function vmOf(t: PatchTarget, offset: number): bigint {
  return offsetToVm(t, BigInt(offset)) ?? BigInt(offset);
}

function conditionNote(p: Patch, c: Collection, ctx: RunContext): string | undefined {
  const w = p.when;
  if (w.darwin) {
    if (c.darwin === null) return `needs Darwin ${formatRange(w.darwin)}, but the kernel's Darwin version is unknown`;
    if (!inRange(c.darwin, w.darwin)) return `Darwin ${c.darwin} is outside ${formatRange(w.darwin)}`;
  }
  if (w.macos && ctx.macos !== undefined && !inRange(ctx.macos, w.macos)) return `macOS ${ctx.macos} is outside ${formatRange(w.macos)}`;
  if (w.arch && !w.arch.includes(c.arch as 'arm64')) return `architecture ${c.arch} is not ${w.arch.join(' or ')}`;
  return undefined;
}

/** Instruction pattern of a matcher after its own action was applied (to recognise a re-run). */
function afterPattern(p: Patch, m: Matcher, r: Resolver, c: Collection): WordPattern[] | null {
  if (m.kind !== 'instructions' || !positionIndependent(p, m.action, r)) return null;
  const written = actionBytes(p, m.action, c, { offset: 0, vmaddr: 0x100000n }, r);
  const words = m.words.slice();
  const first = m.offset / 4;
  for (let i = 0; i < written.length / 4; i++) {
    const v = (written[i * 4]! | (written[i * 4 + 1]! << 8) | (written[i * 4 + 2]! << 16) | (written[i * 4 + 3]! << 24)) >>> 0;
    const k = first + i;
    if (k < 0) return null;
    while (words.length <= k) words.push({ value: 0, mask: 0, text: '*' });
    words[k] = { value: v, mask: 0xffffffff, text: `0x${v.toString(16)}` };
  }
  return words;
}

/** Where C strings live: every section that holds no code (a kernel's __cstring may sit in an
 * executable __TEXT), and sectionless non-executable segments. Code is not searched for strings. */
function stringRanges(t: PatchTarget): Range[] {
  const out: Range[] = [];
  for (const s of t.segments) {
    if (s.sections.length === 0) {
      if (!s.executable && s.filesize > 0n) out.push({ start: Number(s.fileoff), end: Number(s.fileoff + s.filesize), vmaddr: s.vmaddr, label: s.segname });
      continue;
    }
    for (const c of s.sections) {
      if (c.code || c.offset === 0n || c.size === 0n) continue;
      out.push({ start: Number(c.offset), end: Number(c.offset + c.size), vmaddr: c.addr, label: `${c.segname},${c.sectname}` });
    }
  }
  return out;
}

function findTarget(c: Collection, id: string): PatchTarget | undefined {
  return c.targets.get(id);
}

/** Decide and compute every patch against a collection. Throws only for errors in an action that
 * matched (e.g. a branch out of range); matching failures are outcomes. */
export function planPatches(c: Collection, patches: Patch[], ctx: RunContext = {}): PatchOutcome[] {
  const outcomes: PatchOutcome[] = [];
  const pending = new Map<Patch, PendingMatcher[]>();
  // Searches of the same range are batched: one pass per range and kind.
  const wordGroups = new Map<string, { range: Range; queries: WordsQuery[] }>();
  const xrefGroups = new Map<string, { range: Range; queries: XrefQuery[] }>();
  const bytesGroups = new Map<string, { range: Range; queries: BytesQuery[] }>();
  const addTo = <Q>(groups: Map<string, { range: Range; queries: Q[] }>, range: Range, q: Q) => {
    const k = `${range.start}:${range.end}`;
    const g = groups.get(k) ?? { range, queries: [] };
    g.queries.push(q);
    groups.set(k, g);
  };

  // 1. Conditions, targets and scopes; register the batched searches.
  for (const p of patches) {
    const base: PatchOutcome = { patch: p, status: 'failed', matches: 0, edits: [], scope: [], nearest: [] };
    if (ctx.exclude?.has(p.id)) {
      outcomes.push({ ...base, status: 'excluded', note: 'excluded with --exclude-patch' });
      continue;
    }
    const why = conditionNote(p, c, ctx);
    if (why) {
      outcomes.push({ ...base, status: 'skipped-condition', note: why });
      continue;
    }
    const t = findTarget(c, p.target);
    if (!t) {
      outcomes.push({ ...base, status: p.required ? 'failed' : 'not-matched', note: `target ${p.target} is not in this collection` });
      continue;
    }
    const list: PendingMatcher[] = [];
    let scopeProblem: string | undefined;
    for (const m of p.matchers) {
      const codeOnly = m.kind === 'instructions' || m.kind === 'string';
      const ranges = patchRanges(p, t, codeOnly);
      if (typeof ranges === 'string') {
        scopeProblem = ranges;
        list.push({ matcher: m, ranges: [], found: { offsets: [], hint: ranges } });
        continue;
      }
      const pm: PendingMatcher = { matcher: m, ranges };
      if (m.kind === 'instructions') {
        pm.words = ranges.map(() => ({ words: m.words, hits: [] }));
        ranges.forEach((r, i) => addTo(wordGroups, r, pm.words![i]!));
      } else if (m.kind === 'bytes') {
        pm.bytes = ranges.map(() => ({ find: m.find, mask: m.mask, hits: [] }));
        ranges.forEach((r, i) => addTo(bytesGroups, r, pm.bytes![i]!));
      } else if (m.kind === 'string') {
        const strings = findCString(c.bytes, stringRanges(t), m.text, m.partial);
        pm.xrefs = ranges.map((r) => {
          const query: XrefQuery = { addresses: new Set(strings), hits: [] };
          addTo(xrefGroups, r, query);
          return { query, strings };
        });
      }
      list.push(pm);
    }
    if (list.every((x) => x.ranges.length === 0) && scopeProblem) {
      outcomes.push({ ...base, status: p.required ? 'failed' : 'not-matched', note: scopeProblem });
      continue;
    }
    pending.set(p, list);
    outcomes.push(base);
  }

  // 2. One pass per range for all its instruction patterns, one for its string references, one for
  //    its byte patterns.
  for (const g of wordGroups.values()) scanWords(c.bytes, g.range, g.queries);
  for (const g of xrefGroups.values()) scanXrefs(c.bytes, g.range, g.queries);
  for (const g of bytesGroups.values()) scanBytes(c.bytes, g.range, g.queries);

  // 3. Per patch: first matcher with a match wins; check the count; compute the edits.
  for (const o of outcomes) {
    const list = pending.get(o.patch);
    if (!list) continue;
    const p = o.patch;
    const t = findTarget(c, p.target)!;
    const r = makeResolver(c, t);
    o.scope = describeRanges(t, list.flatMap((x) => x.ranges).filter((x, i, a) => a.findIndex((y) => y.start === x.start && y.end === x.end) === i));
    for (const pm of list) pm.found ??= resolveMatches(c, t, pm);
    const win = list.findIndex((pm) => pm.found!.offsets.length > 0);
    if (win < 0) {
      settleUnmatched(o, c, t, r, list);
      continue;
    }
    const offsets = list[win]!.found!.offsets;
    o.matcher = win;
    o.matches = offsets.length;
    const e = p.expect;
    if ((e.op === 'exactly' && offsets.length !== e.n) || (e.op === 'atLeast' && offsets.length < e.n)) {
      o.status = p.required ? 'failed' : 'not-matched';
      o.note = `matched ${offsets.length} time${offsets.length === 1 ? '' : 's'}, expected ${e.op === 'exactly' ? 'exactly' : 'at least'} ${e.n}`;
      o.nearest = offsets.slice(0, 8).map((off) => ({ offset: off, vmaddr: vmOf(t, off), detail: 'full match' }));
      continue;
    }
    const selected = offsets.slice(p.skip, p.count > 0 ? p.skip + p.count : undefined);
    if (selected.length === 0) {
      o.status = p.required ? 'failed' : 'not-matched';
      o.note = `skip ${p.skip} passes over all ${offsets.length} matches`;
      continue;
    }
    const { offset: shift, action } = p.matchers[win]!;
    for (const off of selected) {
      const at = off + shift;
      const site: Site = { offset: at, vmaddr: vmOf(t, at) };
      const after = actionBytes(p, action, c, site, r);
      if (at < 0 || at + after.length > c.bytes.length) throw new PatchError(`patch ${p.id} (${p.source}): the action at 0x${site.vmaddr.toString(16)} runs outside the file`);
      o.edits.push({ offset: at, vmaddr: site.vmaddr, before: Uint8Array.from(c.bytes.subarray(at, at + after.length)), after });
    }
    const unchanged = o.edits.every((ed) => Buffer.compare(ed.before, ed.after) === 0);
    o.status = unchanged ? 'already-applied' : 'applied';
    if (unchanged) o.note = 'the bytes the patch writes are already there';
  }
  checkOverlaps(outcomes);
  return outcomes;
}

function resolveMatches(c: Collection, t: PatchTarget, pm: PendingMatcher): Found {
  const m = pm.matcher;
  switch (m.kind) {
    case 'instructions':
      return { offsets: pm.words!.flatMap((q) => q.hits) };
    case 'bytes':
      return { offsets: pm.bytes!.flatMap((q) => q.hits) };
    case 'symbol': {
      const vm = t.symbols.get(m.name);
      if (vm === undefined) return { offsets: [], hint: `symbol ${m.name} is not in ${t.id}'s symbol table` };
      const off = vmToOffset(t, vm);
      const inScope = off !== undefined && pm.ranges.some((r) => Number(off) >= r.start && Number(off) < r.end);
      return inScope ? { offsets: [Number(off)] } : { offsets: [], hint: `symbol ${m.name} (0x${vm.toString(16)}) is outside the scope` };
    }
    case 'string': {
      const strings = pm.xrefs![0]?.strings ?? [];
      if (strings.length === 0) return { offsets: [], hint: `string "${m.text}" is not in ${t.id}` };
      const refs = pm.xrefs!.flatMap((x) => x.query.hits);
      const where = strings.map((s) => `0x${s.toString(16)}`).join(', ');
      if (refs.length === 0) return { offsets: [], hint: `string "${m.text}" is at ${where}, but no ADRP+ADD/LDR in scope references it` };
      if (m.at === 'xref') return { offsets: refs };
      const starts = new Set<number>();
      for (const ref of refs) {
        const range = pm.ranges.find((r) => ref >= r.start && ref < r.end)!;
        const s = functionStart(c.bytes, range, ref, m.action.kind === 'return' ? materialize(m.action.width === 64 ? 'x0' : 'w0', m.action.value) : undefined);
        if (s !== undefined) starts.add(s);
      }
      if (starts.size === 0) return { offsets: [], hint: `string "${m.text}" is referenced at ${refs.map((x) => `0x${vmOf(t, x).toString(16)}`).join(', ')}, but no function start (PACIBSP / frame setup) was found before it` };
      return { offsets: [...starts].sort((a, b) => a - b) };
    }
  }
}

/** Nothing matched: was the patch applied already (a re-run on a patched kernel)? If not, gather
 * the nearest partial matches for the report. */
function settleUnmatched(o: PatchOutcome, c: Collection, t: PatchTarget, r: Resolver, list: PendingMatcher[]): void {
  const p = o.patch;
  for (const pm of list) {
    const after = afterPattern(p, pm.matcher, r, c);
    if (!after) continue;
    const qs = pm.ranges.map(() => ({ words: after, hits: [] as number[] }));
    pm.ranges.forEach((range, i) => scanWords(c.bytes, range, [qs[i]!]));
    const hits = qs.flatMap((q) => q.hits);
    const n = hits.length;
    if (n > 0 && (p.expect.op === 'exactly' ? n === p.expect.n : n >= p.expect.n)) {
      o.status = 'already-applied';
      o.matches = n;
      o.note = `the original instructions are gone and the patched ones are at ${hits.map((h) => `0x${vmOf(t, h).toString(16)}`).join(', ')}`;
      return;
    }
  }
  o.status = p.required ? 'failed' : 'not-matched';
  const hints: string[] = [];
  list.forEach((pm, i) => {
    const m = pm.matcher;
    const label = p.matchers.length > 1 ? `alternative ${i + 1}: ` : '';
    if (pm.found?.hint) hints.push(label + pm.found.hint);
    if (m.kind === 'instructions') {
      for (const n of nearestWords(c.bytes, pm.ranges, m.words)) o.nearest.push(wordCandidate(t, n, m.words, label));
    } else if (m.kind === 'bytes') {
      for (const n of nearestBytes(c.bytes, pm.ranges, m.find, m.mask)) {
        o.nearest.push({ offset: n.offset, vmaddr: vmOf(t, n.offset), detail: `${label}${n.agreed}/${n.of} bytes agree; first difference at byte ${n.firstDiff}` });
      }
    }
  });
  o.note = hints.length ? hints.join('; ') : 'no match in scope';
}

function wordCandidate(t: PatchTarget, n: NearMiss, words: WordPattern[], label: string): Candidate {
  const diffAt = n.offset + n.firstDiff * 4;
  const b = t.bytes;
  const word = (b[diffAt]! | (b[diffAt + 1]! << 8) | (b[diffAt + 2]! << 16) | (b[diffAt + 3]! << 24)) >>> 0;
  return {
    offset: n.offset, vmaddr: vmOf(t, n.offset),
    detail: `${label}${n.agreed}/${n.of} instructions agree; instruction ${n.firstDiff + 1} differs`,
    word, expected: words[n.firstDiff]!.text,
  };
}

function checkOverlaps(outcomes: PatchOutcome[]): void {
  const edits = outcomes.flatMap((o) => o.edits.map((e) => ({ o, e }))).sort((a, b) => a.e.offset - b.e.offset);
  for (let i = 1; i < edits.length; i++) {
    const prev = edits[i - 1]!;
    const cur = edits[i]!;
    if (cur.e.offset < prev.e.offset + prev.e.after.length && cur.o !== prev.o) {
      throw new PatchError(`patches ${prev.o.patch.id} (${prev.o.patch.source}) and ${cur.o.patch.id} (${cur.o.patch.source}) write overlapping bytes at 0x${cur.e.vmaddr.toString(16)}`);
    }
  }
}

/** A copy of the collection with every edit written. */
export function applyOutcomes(bytes: Uint8Array, outcomes: PatchOutcome[]): Uint8Array {
  const out = bytes.slice();
  for (const o of outcomes) {
    if (o.status !== 'applied') continue;
    for (const e of o.edits) out.set(e.after, e.offset);
  }
  return out;
}
