import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { which } from '../../src/host/tools.js';

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** TAP tests need root (CAP_NET_ADMIN), /dev/net/tun and iproute2's ip. */
export const canMakeTaps = process.getuid?.() === 0 && existsSync('/dev/net/tun') && which('ip') !== null;

/** Run `ip ARGS...`; throws with ip's message on failure. */
export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

/** Remove interfaces a test made (whatever state the test left them in). */
export function deleteLinks(...names: string[]): void {
  for (const n of names) spawnSync('ip', ['link', 'del', n]);
}
