import path from 'node:path';
import { displayPath, loadPatchSet } from './patch-set.js';
import { loadSets, readProfile } from './profile.js';
import { YamlSource, type Problem } from './yaml-source.js';

// `m1prep patch --check FILE...`: validate patch sets and profiles without a kernelcache — YAML
// syntax, schema, the files a profile names, the patch sets it uses, ids unique across sets.

export interface CheckResult {
  files: { file: string; kind: 'patch set' | 'profile' | 'unknown'; patches: number }[];
  problems: Problem[];
}

function kindOf(src: YamlSource): 'patch set' | 'profile' | 'unknown' {
  const d = src.ok ? (src.data() as Record<string, unknown> | null) : null;
  if (d && typeof d === 'object' && 'patchSets' in d) return 'profile';
  if (d && typeof d === 'object' && 'patches' in d) return 'patch set';
  // Decide by folder when the content does not say.
  if (path.basename(path.dirname(path.resolve(src.file))) === 'profiles') return 'profile';
  if (path.basename(path.dirname(path.resolve(src.file))) === 'patches') return 'patch set';
  return 'unknown';
}

export function checkFiles(files: string[]): CheckResult {
  const result: CheckResult = { files: [], problems: [] };
  const seen = new Set<string>();
  const add = (ps: Problem[]) => {
    for (const p of ps) {
      const k = `${p.file}:${p.line}:${p.column}:${p.message}`;
      if (!seen.has(k)) {
        seen.add(k);
        result.problems.push(p);
      }
    }
  };
  const setFiles: string[] = [];
  for (const file of files) {
    const src = YamlSource.read(file);
    const kind = kindOf(src);
    if (kind === 'profile') {
      const profile = readProfile(src);
      add(src.problems);
      let patches = 0;
      if (profile) {
        const problems: Problem[] = [];
        patches = loadSets(profile.patchSets, problems).reduce((n, s) => n + s.patches.length, 0);
        add(problems.map((p) => ({ ...p, file: displayPath(p.file) })));
      }
      result.files.push({ file, kind, patches });
    } else if (kind === 'patch set') {
      setFiles.push(file);
      const set = loadPatchSet(src);
      add(src.problems);
      result.files.push({ file, kind, patches: set?.patches.length ?? 0 });
    } else {
      add(src.ok ? [{ file, line: 1, column: 1, message: 'neither a patch set (no "patches") nor a profile (no "patchSets")' }] : src.problems);
      result.files.push({ file, kind, patches: 0 });
    }
  }
  // Patch ids must be unique across every set checked together (--exclude-patch names them).
  if (setFiles.length > 1) {
    const problems: Problem[] = [];
    loadSets(setFiles, problems);
    add(problems.filter((p) => /is also used in/.test(p.message)));
  }
  const order = new Map(files.map((f, i) => [f, i]));
  result.problems.sort((a, b) => (order.get(a.file) ?? 1e9) - (order.get(b.file) ?? 1e9) || a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
  return result;
}
