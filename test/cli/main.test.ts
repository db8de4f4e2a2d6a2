import { accessSync, constants } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('m1prep CLI', () => {
  it('prints help with every command and the exit codes', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/doctor/);
    expect(r.stdout).toMatch(/Exit codes/);
  });

  it('rejects an unknown command with exit 2 and one line', () => {
    const r = runCli(['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^m1prep: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('doctor --json reports the host and every tool', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { checks: { name: string; status: string }[] };
    expect(j.checks.find((c) => c.name === 'host')?.status).toBe('ok');
    expect(j.checks.some((c) => c.name === 'llvm-objdump')).toBe(true);
    // --net tap: ok exactly when /dev/net/tun is there and this user may open it.
    let tun = false;
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
      tun = true;
    } catch { /* absent or not ours */ }
    expect(j.checks.find((c) => c.name === 'tap (/dev/net/tun)')?.status).toBe(tun ? 'ok' : 'warn');
  });
});
