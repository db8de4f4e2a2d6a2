import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { which } from '../../src/host/tools.js';
import { encodeFrame, FrameDecoder, openNetLink, parseNetSpec, type NetLink } from '../../src/vmm/net/link.js';
import { formatMac, parseMac } from '../../src/vmm/devices/virtio-net.js';
import { repoRoot, runCli } from '../helpers/cli.js';
import { canMakeTaps, deleteLinks, freePort, ip } from '../helpers/net.js';

// The host side of m1prep's virtual NICs: --net specs, the length-prefixed stream framing that
// qemu's -netdev socket uses, links over real loopback sockets, and the pcap capture (read back by
// tcpdump where it is installed). The guest side is proven in linux-guest.test.ts, where a Linux
// guest on m1prep and one on qemu ping each other.

const work = mkdtempSync(path.join(tmpdir(), 'm1prep-net-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** An Ethernet frame: broadcast destination, our source, an experimental EtherType, a payload. */
function frame(payload: number[]): Uint8Array {
  return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x88, 0xb5, ...payload]);
}


function nextFrames(link: NetLink, n: number): Promise<Uint8Array[]> {
  return new Promise((resolve) => {
    const got: Uint8Array[] = [];
    link.onFrame = (f) => { got.push(f); if (got.length === n) resolve(got); };
  });
}

describe('net specs', () => {
  it('parses listen/connect/null with mac and dump', () => {
    expect(parseNetSpec('socket,listen=5555')).toMatchObject({ kind: 'socket', listen: { host: '127.0.0.1', port: 5555 } });
    expect(parseNetSpec('socket,connect=10.0.0.7:80')).toMatchObject({ connect: { host: '10.0.0.7', port: 80 } });
    const s = parseNetSpec('null,mac=52:54:00:ab:cd:ef,dump=x.pcap');
    expect(s.kind).toBe('null');
    expect(formatMac(s.mac!)).toBe('52:54:00:ab:cd:ef');
    expect(s.dump).toBe('x.pcap');
    expect(parseNetSpec('tap').kind).toBe('tap');
    expect(parseNetSpec('tap').ifname).toBeUndefined();
    expect(parseNetSpec('tap,ifname=tap7,dump=t.pcap')).toMatchObject({ kind: 'tap', ifname: 'tap7', dump: 't.pcap' });
  });

  it('refuses what cannot work, saying why', () => {
    expect(() => parseNetSpec('user')).toThrow(/socket, tap or null/);
    expect(() => parseNetSpec('socket')).toThrow(/exactly one of listen/);
    expect(() => parseNetSpec('socket,listen=1,connect=2')).toThrow(/exactly one of listen/);
    expect(() => parseNetSpec('socket,listen=70000')).toThrow(/not \[HOST:\]PORT/);
    expect(() => parseNetSpec('null,mac=01:00:5e:00:00:01')).toThrow(/unicast MAC/); // multicast bit
    expect(() => parseNetSpec('null,speed=10')).toThrow(/unknown option/);
    expect(() => parseNetSpec('tap,listen=1')).toThrow(/unknown option "listen=1" \(ifname=, mac=, dump=\)/);
    expect(() => parseNetSpec('null,ifname=tap0')).toThrow(/unknown option/);
    expect(parseMac('52:54:00:12:34')).toBeNull();
  });
});

describe('stream framing (qemu -netdev socket)', () => {
  it('4-byte big-endian length, then the frame', () => {
    expect([...encodeFrame(Uint8Array.of(1, 2, 3))]).toEqual([0, 0, 0, 3, 1, 2, 3]);
  });

  it('gives back the same frames however the stream is split', () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
      (frames, cuts) => {
        const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
        const dec = new FrameDecoder();
        const out: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = cuts[i % cuts.length]!;
          out.push(...dec.push(stream.subarray(at, at + n)));
          at += n;
        }
        expect(out.map((f) => Buffer.from(f).toString('hex'))).toEqual(frames.map((f) => Buffer.from(f).toString('hex')));
      },
    ), { numRuns: 300 });
  });

  it('rejects a length no peer sends instead of buffering it', () => {
    expect(() => new FrameDecoder().push(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 0))).toThrow(RangeError);
  });
});

describe('links over loopback', () => {
  it('a listening and a connecting link carry frames both ways', async () => {
    const port = await freePort();
    const a = await openNetLink(parseNetSpec(`socket,listen=127.0.0.1:${port}`));
    const b = await openNetLink(parseNetSpec(`socket,connect=${port}`));
    try {
      const atA = nextFrames(a, 2);
      // The listening side learns of its peer on the next event-loop turn.
      await new Promise((r) => setTimeout(r, 50));
      const atB = nextFrames(b, 1);
      b.send(frame([1]));
      b.send(frame([2, 2]));
      a.send(frame([3, 3, 3]));
      expect((await atA).map((f) => f.at(-1))).toEqual([1, 2]);
      expect((await atB)[0]).toEqual(frame([3, 3, 3]));
      expect(b.stats.framesOut).toBe(2);
      expect(a.stats.framesIn).toBe(2);
    } finally {
      a.close();
      b.close();
    }
  });

  it('connect to a port nobody listens on fails with a host error naming it (after retrying)', async () => {
    const port = await freePort();
    await expect(openNetLink(parseNetSpec(`socket,connect=127.0.0.1:${port}`))).rejects.toThrow(new RegExp(`connect=127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  }, 15_000);

  it('a TAP interface name longer than the kernel allows is a host error naming it', async () => {
    await expect(openNetLink(parseNetSpec('tap,ifname=m1prep-far-too-long'))).rejects.toThrow(/--net tap,ifname=m1prep-far-too-long: an interface name has at most 15 bytes/);
  });

  // Two TAP links whose interfaces are ports of one Linux bridge: a frame written by one comes out
  // of the other through the host kernel. Needs root (CAP_NET_ADMIN), /dev/net/tun and iproute2.
  it.skipIf(!canMakeTaps)('two TAP links on a host bridge carry frames both ways (needs root, /dev/net/tun and ip)', async () => {
    const tag = (process.pid % 10000).toString();
    const [ta, tb, br] = [`m1pl${tag}a`, `m1pl${tag}b`, `m1plbr${tag}`];
    // The compiled link (npm test builds first): its reading thread cannot load TypeScript.
    const dist = path.join(repoRoot, 'dist/src/vmm/net/link.js');
    expect(existsSync(dist), 'dist/ is built (npm run build)').toBe(true);
    const compiled = (await import(dist)) as typeof import('../../src/vmm/net/link.js');
    const links: NetLink[] = [];
    try {
      ip('link', 'add', br, 'type', 'bridge');
      for (const t of [ta, tb]) {
        // TUNSETIFF creates the interface (root); then it joins the bridge.
        links.push(await compiled.openNetLink(compiled.parseNetSpec(`tap,ifname=${t}`)));
        ip('link', 'set', t, 'master', br);
        ip('link', 'set', t, 'up');
      }
      ip('link', 'set', br, 'up');
      expect(links.map((l) => l.describe)).toEqual([`tap ${ta}`, `tap ${tb}`]);
      // A bridge port forwards only once it is up; resend until the first frame makes it.
      const want = (l: NetLink, payload: number) => new Promise<void>((resolve) => {
        l.onFrame = (f) => { if (f[12] === 0x88 && f[13] === 0xb5 && f[14] === payload) resolve(); };
      });
      for (const [from, to, payload] of [[0, 1, 7], [1, 0, 9]] as const) {
        const got = want(links[to]!, payload);
        let done = false;
        void got.then(() => { done = true; });
        for (let i = 0; i < 50 && !done; i++) {
          links[from]!.send(frame([payload, 1, 2, 3]));
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(done, `frame from ${from === 0 ? ta : tb} to ${to === 0 ? ta : tb}`).toBe(true);
      }
      expect(links[0]!.stats.framesOut).toBeGreaterThan(0);
      expect(links[0]!.stats.framesIn).toBeGreaterThan(0);
    } finally {
      for (const l of links) l.close();
      deleteLinks(br, ta, tb);
    }
  }, 30_000);

  it('the CLI refuses a bad --net with exit 2 and one line, before booting anything', () => {
    const r = runCli(['boot', '--kernel', '/nonexistent', '--net', 'socket,listen=0']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--net socket,listen=0/);
  });
});

describe.skipIf(!which('tcpdump'))('pcap capture (read back by tcpdump)', () => {
  it('records every frame both ways in a file tcpdump decodes', async () => {
    const port = await freePort();
    const file = path.join(work, 'cap.pcap');
    const a = await openNetLink(parseNetSpec(`socket,listen=${port},dump=${file}`));
    const b = await openNetLink(parseNetSpec(`socket,connect=${port}`));
    try {
      const got = nextFrames(a, 1);
      await new Promise((r) => setTimeout(r, 50));
      a.send(frame([0xaa, 0xbb]));
      b.send(frame([0xcc]));
      await got;
    } finally {
      a.close();
      b.close();
    }
    const r = spawnSync(which('tcpdump')!, ['-n', '-e', '-r', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // One line per frame starts with its time stamp; tcpdump adds hex lines for unknown payloads.
    const lines = r.stdout.split('\n').filter((l) => /^\d/.test(l));
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatch(/52:54:00:12:34:56 > ff:ff:ff:ff:ff:ff, ethertype Unknown \(0x88b5\)/);
    expect(lines[0]).toMatch(/length 16/);
    expect(lines[1]).toMatch(/length 15/);
  });
});
