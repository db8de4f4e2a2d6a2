import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { inFile, PatchError } from '../errors.js';
import { openContainer } from '../macho/container.js';
import { planPatches, type PatchStatus } from './engine.js';
import { loadProfile, resolveProfilePath, shippedProfiles, type LoadedProfile } from './profile.js';
import { formatProblem } from './yaml-source.js';
import { openCollection } from './target.js';
import { inRange } from './versions.js';

// `m1prep matrix`: every profile against every kernelcache of a directory, matched by Darwin
// version, patches planned but nothing written — which patch still matches which release.

export interface MatrixCell {
  id: string;
  status: PatchStatus;
  required: boolean;
  note?: string;
}

export interface MatrixRow {
  kernelcache: string;
  darwin: string | null;
  /** Profile whose Darwin range holds the kernel's version, or null. */
  profile: string | null;
  patches: MatrixCell[];
  /** Why there is no result (no profile, unreadable file). */
  note?: string;
}

const MAX_KERNELCACHE = 1024 * 1024 * 1024;
const NAME = /(kernelcache|\.im4p$|\.img4$|\.macho$)/i;

/** Kernelcache files in DIR and its direct sub-directories (samples/build/<version>/...). */
export function findKernelcaches(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string, depth: number) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && depth === 0) visit(p, 1);
      else if (e.isFile() && NAME.test(e.name)) out.push(p);
    }
  };
  visit(dir, 0);
  // A raw collection beside its IM4P is the same kernel twice: keep the IM4P.
  return out.filter((f) => !(f.endsWith('.macho') && out.includes(f.replace(/\.macho$/, '.im4p'))));
}

export function loadProfiles(names: string[]): LoadedProfile[] {
  return (names.length ? names : shippedProfiles()).map((n) => {
    const l = loadProfile(n);
    if ('problems' in l) throw new PatchError(`profile ${resolveProfilePath(n)}: ${l.problems.map(formatProblem).join('; ')}`);
    return l;
  });
}

export function matrixRow(file: string, profiles: LoadedProfile[]): MatrixRow {
  const bytes = new Uint8Array(readFileSync(file));
  const payload = inFile(file, () => openContainer(bytes, { maxOutput: MAX_KERNELCACHE }).payload);
  const c = inFile(file, () => openCollection(payload));
  if (c.darwin === null) return { kernelcache: file, darwin: null, profile: null, patches: [], note: 'no Darwin version string in the kernel' };
  const p = profiles.find((x) => inRange(c.darwin!, x.profile.darwin));
  if (!p) return { kernelcache: file, darwin: c.darwin, profile: null, patches: [], note: `no profile accepts Darwin ${c.darwin}` };
  const outcomes = planPatches(c, p.patches, { macos: p.profile.macos.replace(/\.x$/, '') });
  return {
    kernelcache: file, darwin: c.darwin, profile: p.profile.name,
    patches: outcomes.map((o) => ({ id: o.patch.id, status: o.status, required: o.patch.required, ...(o.note ? { note: o.note } : {}) })),
  };
}

export function matrixFailed(rows: MatrixRow[]): boolean {
  return rows.some((r) => r.patches.some((c) => c.status === 'failed'));
}

const SHORT: Record<PatchStatus, string> = {
  applied: 'applied', 'already-applied': 'already applied', 'not-matched': 'not matched', failed: 'FAILED',
  'skipped-condition': 'skipped by condition', excluded: 'excluded',
};

/** Rows = patches, columns = kernelcaches (with profile and Darwin version). */
export function matrixTable(rows: MatrixRow[]): { header: string[]; body: string[][] } {
  const ids = [...new Set(rows.flatMap((r) => r.patches.map((c) => c.id)))];
  const header = ['patch', ...rows.map((r) => `${path.basename(path.dirname(r.kernelcache))}/${path.basename(r.kernelcache)} (${r.profile ?? '-'}, Darwin ${r.darwin ?? '?'})`)];
  const body = ids.map((id) => [id, ...rows.map((r) => {
    const c = r.patches.find((x) => x.id === id);
    return c ? SHORT[c.status] : r.note ?? '-';
  })]);
  if (ids.length === 0) body.push(['(none)', ...rows.map((r) => r.note ?? '-')]);
  return { header, body };
}

export function matrixMarkdown(rows: MatrixRow[]): string {
  const { header, body } = matrixTable(rows);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
