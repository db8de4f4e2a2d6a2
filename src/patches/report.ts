import { hex } from '../util/hex.js';
import { disassemble, disassembleWord } from './disasm.js';
import type { Candidate, PatchOutcome, PatchStatus } from './engine.js';

// The patch report (out/patch-report.json and .txt): every patch, what happened to it and why,
// where it wrote (target, vmaddr, file offset), the bytes and the disassembly before and after.
// `m1prep patch --revert` restores the original from the recorded bytes.

export const REPORT_JSON = 'patch-report.json';
export const REPORT_TXT = 'patch-report.txt';
export const REPORT_VERSION = 1;

export interface ReportEdit {
  vmaddr: string;
  fileOffset: string;
  before: string;
  after: string;
  /** Disassembly of the 4-byte-aligned words covering the edit. */
  disasmBefore: string[];
  disasmAfter: string[];
}

export interface ReportCandidate {
  vmaddr: string;
  fileOffset: string;
  detail: string;
  expected?: string;
  found?: string;
}

export interface ReportPatch {
  id: string;
  set: string;
  source: string;
  target: string;
  status: PatchStatus;
  required: boolean;
  verified: string;
  reason: string;
  note?: string;
  /** Which alternative matched (0-based), of how many. */
  matcher?: number;
  alternatives: number;
  matches: number;
  scope: string[];
  edits: ReportEdit[];
  nearest: ReportCandidate[];
}

export interface PatchReport {
  m1prepPatchReport: typeof REPORT_VERSION;
  profile: string;
  macos: string;
  darwin: string | null;
  arch: string;
  /** sha256 of the unpatched raw Mach-O collection and of the patched one. */
  originalSha256: string;
  patchedSha256: string;
  dryRun: boolean;
  summary: Record<PatchStatus, number>;
  patches: ReportPatch[];
}

async function covering(bytes: Uint8Array, offset: number, len: number, vmaddr: bigint): Promise<string[]> {
  const start = offset - (offset % 4);
  const end = Math.ceil((offset + len) / 4) * 4;
  return disassemble(bytes.subarray(start, end), vmaddr - BigInt(offset - start));
}

async function candidate(c: Candidate): Promise<ReportCandidate> {
  return {
    vmaddr: hex(c.vmaddr), fileOffset: hex(c.offset), detail: c.detail,
    ...(c.expected !== undefined ? { expected: c.expected } : {}),
    ...(c.word !== undefined ? { found: `${await disassembleWord(c.word, c.vmaddr)} (0x${c.word.toString(16).padStart(8, '0')})` } : {}),
  };
}

export function summarize(outcomes: PatchOutcome[]): Record<PatchStatus, number> {
  const s: Record<PatchStatus, number> = { applied: 0, 'already-applied': 0, 'not-matched': 0, failed: 0, 'skipped-condition': 0, excluded: 0 };
  for (const o of outcomes) s[o.status]++;
  return s;
}

export async function reportPatches(original: Uint8Array, patched: Uint8Array, outcomes: PatchOutcome[]): Promise<ReportPatch[]> {
  const out: ReportPatch[] = [];
  for (const o of outcomes) {
    const p = o.patch;
    const edits: ReportEdit[] = [];
    for (const e of o.edits) {
      edits.push({
        vmaddr: hex(e.vmaddr), fileOffset: hex(e.offset),
        before: Buffer.from(e.before).toString('hex'), after: Buffer.from(e.after).toString('hex'),
        disasmBefore: await covering(original, e.offset, e.before.length, e.vmaddr),
        disasmAfter: o.status === 'applied' ? await covering(patched, e.offset, e.after.length, e.vmaddr) : await coveringEdited(original, e.offset, e.after, e.vmaddr),
      });
    }
    out.push({
      id: p.id, set: p.set, source: p.source, target: p.target, status: o.status, required: p.required, verified: p.verified,
      reason: p.reason, ...(o.note ? { note: o.note } : {}), ...(o.matcher !== undefined ? { matcher: o.matcher } : {}),
      alternatives: p.matchers.length, matches: o.matches, scope: o.scope, edits, nearest: await Promise.all(o.nearest.map(candidate)),
    });
  }
  return out;
}

/** Disassembly of the words covering an edit that was not written (the bytes as they would be). */
async function coveringEdited(bytes: Uint8Array, offset: number, after: Uint8Array, vmaddr: bigint): Promise<string[]> {
  const start = offset - (offset % 4);
  const end = Math.ceil((offset + after.length) / 4) * 4;
  const window = bytes.slice(start, end);
  window.set(after, offset - start);
  return disassemble(window, vmaddr - BigInt(offset - start));
}

const STATUS_WORD: Record<PatchStatus, string> = {
  applied: 'applied', 'already-applied': 'ALREADY APPLIED', 'not-matched': 'not matched (optional)', failed: 'FAILED',
  'skipped-condition': 'skipped (condition)', excluded: 'excluded',
};

/** One patch, as a person reads it (used for the .txt report and for errors on stderr). */
export function describePatch(p: ReportPatch): string[] {
  const alt = p.matcher !== undefined && p.alternatives > 1 ? `, by alternative ${p.matcher + 1} of ${p.alternatives}` : '';
  const lines = [`${p.id} [${p.set}] ${STATUS_WORD[p.status]}${alt}  (${p.source}; target ${p.target}; verified: ${p.verified})`];
  lines.push(`  why: ${p.reason.replace(/\s+/g, ' ')}`);
  if (p.note) lines.push(`  ${p.status === 'applied' ? 'note' : 'result'}: ${p.note}`);
  if (p.scope.length && (p.status === 'failed' || p.status === 'not-matched')) {
    lines.push('  searched:');
    for (const s of p.scope) lines.push(`    ${s}`);
  }
  for (const e of p.edits) {
    lines.push(`  at ${e.vmaddr} (file offset ${e.fileOffset}): ${e.before} -> ${e.after}`);
    const n = Math.max(e.disasmBefore.length, e.disasmAfter.length);
    for (let i = 0; i < n; i++) lines.push(`    ${(e.disasmBefore[i] ?? '').padEnd(40)} -> ${e.disasmAfter[i] ?? ''}`);
  }
  if (p.nearest.length) {
    lines.push(p.status === 'failed' || p.status === 'not-matched' ? '  nearest partial matches:' : '  matches:');
    for (const c of p.nearest) {
      lines.push(`    ${c.vmaddr} (file offset ${c.fileOffset}): ${c.detail}${c.expected ? `: expected "${c.expected}", found "${c.found}"` : ''}`);
    }
  }
  return lines;
}

export function reportText(r: PatchReport): string {
  const s = r.summary;
  const head = [
    `m1prep patch report${r.dryRun ? ' (dry run: nothing written)' : ''}`,
    `profile ${r.profile} (macOS ${r.macos}); kernel Darwin ${r.darwin ?? 'unknown'}, ${r.arch}`,
    `original sha256 ${r.originalSha256}`,
    `patched  sha256 ${r.patchedSha256}`,
    `${s.applied} applied, ${s['already-applied']} already applied, ${s.failed} failed, ${s['not-matched']} optional not matched, ${s['skipped-condition']} skipped by condition, ${s.excluded} excluded`,
    '',
  ];
  return [...head, ...r.patches.flatMap((p) => [...describePatch(p), ''])].join('\n');
}
