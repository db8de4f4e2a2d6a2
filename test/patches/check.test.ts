import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/patches/check.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { problemsOf } from './helpers.js';

// Patch and profile validation without a kernelcache: every problem as line:column and a sentence.

const OK_PATCH = `  - id: p1
    reason: "a reason long enough to pass the schema"
    verified: samples-only
    target: com.apple.kernel
    match: { symbol: _x }
    action: { return: 0 }
`;
const set = (patches: string) => `set: test\ndescription: d\npatches:\n${patches}`;

describe('patch set validation (schema + compile), with line:column', () => {
  it('accepts a valid set', () => {
    expect(problemsOf(set(OK_PATCH))).toEqual([]);
  });

  it('YAML syntax errors', () => {
    expect(problemsOf('set: test\ndescription: [unclosed\npatches: []\n')[0]).toMatch(/^\d+:\d+: YAML syntax: /);
    expect(problemsOf(`set: test\nset: again\ndescription: d\npatches: []\n`)[0]).toMatch(/^2:1: YAML syntax: Map keys must be unique/);
  });

  it('unknown keys point at the key; enums, lengths and required keys are explained', () => {
    const p = problemsOf(set(OK_PATCH.replace('    verified: samples-only\n', '    verified: maybe\n    colour: red\n')));
    expect(p).toContain('7:5: patches.0: unknown property "colour"');
    expect(p).toContain('6:15: patches.0.verified must be one of "samples-only", "real-kernel"');
    expect(problemsOf(set(OK_PATCH.replace(/    reason: .*\n/, '')))).toEqual(['4:5: patches.0: "reason" is required']);
    expect(problemsOf(set(OK_PATCH.replace(/reason: .*/, 'reason: "too short"')))).toEqual(['5:13: patches.0.reason must NOT have fewer than 20 characters']);
    expect(problemsOf(set(OK_PATCH.replace('target: com.apple.kernel', 'target: 5')))).toEqual(['7:13: patches.0.target must be a string']);
  });

  it('shapes, patterns and ranges in plain words', () => {
    const p = problemsOf(set(OK_PATCH.replace('id: p1', 'id: P1').replace('    match:', '    expect: "one"\n    when: { darwin: { min: "abc" } }\n    limit: -1\n    match:')));
    expect(p).toEqual([
      '4:9: patches.0.id must be lower-case letters, digits and dashes (like sep-wait)',
      '8:13: patches.0.expect must be a count N, { exactly: N } or { atLeast: N }',
      '9:28: patches.0.when.darwin.min must be a version like 21, 21.4 or 21.4.1',
      '10:12: patches.0.limit must be >= 0',
    ]);
    expect(problemsOf(set(OK_PATCH.replace('match: { symbol: _x }', 'match: []')))).toEqual(['8:12: patches.0.match must NOT have fewer than 1 items']);
  });

  it('a matcher or action with two kinds at once', () => {
    const p = problemsOf(set(OK_PATCH.replace('match: { symbol: _x }', 'match: { symbol: _x, string: "y" }').replace('action: { return: 0 }', 'action: { return: 0, nop: 1 }')));
    expect(p).toEqual([
      '8:12: patches.0.match must have exactly one of instructions, bytes, string or symbol (mask goes only with bytes)',
      '9:13: patches.0.action must have exactly one of replace, instructions, nop, return or pointer (mask goes only with replace, width only with return)',
    ]);
  });

  it('instructions the assembler cannot read, at the exact list item', () => {
    const p = problemsOf(set(OK_PATCH.replace('match: { symbol: _x }', 'match:\n      instructions: ["bl *", "frob x1", "mov x0, #0x12345"]')));
    expect(p).toEqual([
      '9:30: instruction pattern "frob x1": unsupported instruction "frob" (known: add, adds, adr, adrp, autiasp, autibsp, b, b.cond, bl, blr, br, brk, bti, cbnz, cbz, cmn, cmp, isb, ldp, ldr, mov, movk, movn, movz, nop, paciasp, pacibsp, ret, retaa, retab, stp, str, sub, subs, tbnz, tbz)',
      '9:41: instruction pattern "mov x0, #0x12345": mov: 74565 needs more than one instruction (use movz + movk)',
    ]);
    expect(problemsOf(set(OK_PATCH.replace('action: { return: 0 }', 'action: { instructions: ["ret x99"] }')))).toEqual(['9:30: instruction "ret x99": no register x99']);
    expect(problemsOf(set(OK_PATCH.replace('match: { symbol: _x }', 'match: { instructions: ["*", "*"] }')))).toEqual(['8:28: an instruction pattern made only of wildcards matches everywhere']);
  });

  it('masks of the wrong length, offsets that split instructions, empty version ranges, section without segment', () => {
    expect(problemsOf(set(OK_PATCH.replace('match: { symbol: _x }', 'match: { bytes: "aabbcc", mask: "ffff" }')))).toEqual(['8:37: mask has 2 bytes but bytes has 3']);
    expect(problemsOf(set(OK_PATCH.replace('action: { return: 0 }', 'offset: 2\n    action: { nop: 1 }')))).toEqual(['9:13: the offset is not a multiple of 4, but the action writes instructions']);
    expect(problemsOf(set(OK_PATCH.replace('    match:', '    when: { darwin: { min: "22.1", max: "22.0.9" } }\n    match:')))).toEqual(['8:21: darwin range 22.1..22.0.9 is empty (min is above max)']);
    expect(problemsOf(set(OK_PATCH.replace('    match:', '    section: __text\n    match:')))).toEqual(['8:14: section needs segment too (sections are named within a segment)']);
    expect(problemsOf(set(OK_PATCH.replace('return: 0', 'return: 0x100000000, width: 32')))).toEqual(['9:23: return value 4294967296 does not fit 32 bits']);
  });

  it('ids unique within a set; the set named like its file', () => {
    expect(problemsOf(set(OK_PATCH + OK_PATCH))).toEqual(['10:9: patch id "p1" is already used by patch 1 of this set']);
    expect(problemsOf(set(OK_PATCH), 'other')).toEqual(['1:6: set is "test" but the file is named other.yaml (profiles find sets by file name)']);
  });
});

function tempRepo(): string {
  // A copy of the shipped profiles and patch sets, so they can be broken.
  const d = mkdtempSync(path.join(tmpdir(), 'm1prep-check-'));
  for (const sub of ['patches', 'profiles', 'layouts']) {
    mkdirSync(path.join(d, sub));
    for (const f of readdirSync(path.join(repoRoot, sub))) copyFileSync(path.join(repoRoot, sub, f), path.join(d, sub, f));
  }
  for (const sub of ['ramdisk', 'devicetree']) cpSync(path.join(repoRoot, 'samples', sub), path.join(d, 'samples', sub), { recursive: true });
  return d;
}

describe('profile validation and references between files', () => {
  it('every shipped patch set and profile is valid', () => {
    const files = [...readdirSync(path.join(repoRoot, 'patches')).map((f) => path.join(repoRoot, 'patches', f)), ...readdirSync(path.join(repoRoot, 'profiles')).map((f) => path.join(repoRoot, 'profiles', f))];
    const r = checkFiles(files);
    expect(r.problems).toEqual([]);
    expect(r.files.filter((f) => f.kind === 'profile').map((f) => path.basename(f.file)).sort()).toEqual(['11.x.yaml', '12.0.yaml', '12.3.yaml', '13.x.yaml', '14.x.yaml', '15.x.yaml']);
  });

  it('a missing patch set, a missing layout, a bad regex and an empty Darwin range are reported where they are written', () => {
    const d = tempRepo();
    const f = path.join(d, 'profiles', 'bad.yaml');
    writeFileSync(f, `macos: "12.3"
darwin: { min: "21.6", max: "21.4" }
description: broken on purpose
patchSets: [platform, no-such-set]
bootArgs: ""
layout: ../layouts/nope.yaml
deviceTree: { edits: [] }
ramdisk: { fs: hfsplus }
machine: { ramMiB: 1024, cpus: 4 }
verify: { success: ["ok("], failure: [], timeoutS: 10 }
`);
    const msgs = checkFiles([f]).problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
    expect(msgs).toEqual([
      '2:9: darwin range 21.6..21.4 is empty (min is above max)',
      '4:23: patch set "no-such-set" not found: no ' + path.relative(process.cwd(), path.join(d, 'patches', 'no-such-set.yaml')),
      '6:9: layout ../layouts/nope.yaml does not exist (paths are relative to the profile)',
      '10:21: not a valid regular expression: Invalid regular expression: /ok(/: Unterminated group',
    ]);
  });

  it('the same patch id in two sets of a profile is reported in the second set', () => {
    const d = tempRepo();
    writeFileSync(path.join(d, 'patches', 'dup.yaml'), set(OK_PATCH.replace('id: p1', 'id: sample-platform-check')).replace('set: test', 'set: dup'));
    const prof = path.join(d, 'profiles', '12.3.yaml');
    writeFileSync(prof, readFileSync(prof, "utf8").replace('patchSets: [platform, sep, code-signing]', 'patchSets: [platform, dup]'));
    const msgs = checkFiles([prof]).problems.map((p) => `${path.basename(p.file)}:${p.line}:${p.column}: ${p.message}`);
    expect(msgs).toEqual(['dup.yaml:4:9: patch id "sample-platform-check" is also used in platform.yaml (ids must be unique across a profile\'s patch sets)']);
  });
});


describe('m1prep patch --check (CLI)', () => {
  it('exit 0 on the shipped files, exit 3 with file:line:column lines on problems', () => {
    const ok = runCli(['patch', '--check', 'patches/platform.yaml', 'profiles/12.3.yaml']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/checked 2 files \(\d+ patches\): no problems/);
    const d = mkdtempSync(path.join(tmpdir(), 'm1prep-check-'));
    const f = path.join(d, 'test.yaml');
    writeFileSync(f, set(OK_PATCH.replace('verified: samples-only', 'verified: nope')));
    const bad = runCli(['patch', '--check', f]);
    expect(bad.code).toBe(3);
    expect(bad.stdout.trim()).toBe(`${f}:6:15: patches.0.verified must be one of "samples-only", "real-kernel"`);
    const json = runCli(['patch', '--check', f, '--json']);
    expect(JSON.parse(json.stdout).problems[0]).toMatchObject({ line: 6, column: 15 });
  });
});
