import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { loadFlavours, selectFlavours } from '../../src/samples/flavours.js';
import { runCli } from '../helpers/cli.js';

describe('m1prep sample', () => {
  it('lists the flavours, one per shipped profile, as JSON', () => {
    const r = runCli(['sample', 'list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { flavours } = JSON.parse(r.stdout) as { flavours: { profile: string; darwin: string; bootLineLength: number }[] };
    expect(flavours.map((f) => f.profile)).toEqual(['11.x', '12.0', '12.3', '13.x', '14.x', '15.x']);
    // XNU's BOOT_LINE_LENGTH: 608 through Darwin 22, 1024 from Darwin 23.
    for (const f of flavours) expect(f.bootLineLength).toBe(Number(f.darwin.split('.')[0]) >= 23 ? 1024 : 608);
  });

  it('refuses an unknown flavour with a usage error (exit 2) and one line', () => {
    const r = runCli(['sample', 'build', '10.15']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no sample flavour "10.15"/);
  });

  it('has --help with examples', () => {
    const r = runCli(['sample', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sample build 12\.3/);
  });

  it('rejects a malformed flavours file with a FormatError naming the flavour', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'm1prep-flavours-'));
    try {
      const f = path.join(dir, 'flavours.yaml');
      writeFileSync(f, 'flavours:\n  - { profile: "12.3", macos: "12.3", darwin: "21.4", bootLineLength: 608 }\n');
      expect(() => loadFlavours(f)).toThrow(FormatError);
      expect(() => loadFlavours(f)).toThrow(/flavour 1/);
      writeFileSync(f, 'flavours: [\n');
      expect(() => loadFlavours(f)).toThrow(FormatError);
      writeFileSync(f, 'flavours:\n  - { profile: "14.x", macos: "14.4", darwin: "23.4.0", bootLineLength: 1024 }\n');
      expect(selectFlavours(loadFlavours(f), ['23.4.0'])[0]!.profile).toBe('14.x');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
