import net from 'node:net';
import { HostError, UsageError } from '../../errors.js';
import { parseMac } from '../devices/virtio-net.js';
import { PcapWriter } from './pcap.js';
import { TapLink } from './tap-link.js';

// The other end of a virtual NIC's cable. `--net` specs, in the spirit of qemu's -netdev:
//   socket,listen=[HOST:]PORT    wait for one peer on a TCP port (default host 127.0.0.1)
//   socket,connect=[HOST:]PORT   connect to a peer listening there (retried for a few seconds)
//   tap[,ifname=NAME]            a host TAP interface (an existing one, or a new "m1prepN": root)
//   null                         a NIC whose cable goes nowhere (frames sent are dropped)
// options: mac=52:54:00:12:34:56, dump=FILE.pcap (every frame both ways, for tcpdump/Wireshark).
// A socket link carries each Ethernet frame as a 4-byte big-endian length and the frame: the
// framing of qemu's `-netdev socket` / `-netdev stream`, so an m1prep VM and a qemu VM can share
// one virtual Ethernet segment.

export interface HostPort {
  host: string;
  port: number;
}

export interface NetSpec {
  kind: 'socket' | 'tap' | 'null';
  listen?: HostPort;
  connect?: HostPort;
  mac?: Uint8Array;
  dump?: string;
  /** tap: the interface to attach to (default: create one). */
  ifname?: string;
  /** The text the user wrote, for messages. */
  text: string;
}

export interface NetLinkStats {
  framesOut: number;
  framesIn: number;
  /** Frames sent while no peer was connected (a cable plugged into nothing drops them). */
  framesDropped: number;
  peer: string | null;
}

export interface NetLink {
  readonly describe: string;
  /** A frame the guest transmitted. */
  send(frame: Uint8Array): void;
  /** Frames towards the guest. */
  onFrame: ((frame: Uint8Array) => void) | null;
  readonly stats: NetLinkStats;
  close(): void;
}

/** The largest frame a socket peer may announce: a jumbo frame. A larger length is a broken stream. */
const MAX_STREAM_FRAME = 65536;
const CONNECT_RETRY_MS = 5000;

function parseHostPort(value: string, spec: string): HostPort {
  const m = /^(?:(.*):)?(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--net ${spec}: "${value}" is not [HOST:]PORT`);
  return { host: m[1] || '127.0.0.1', port };
}

export function parseNetSpec(text: string): NetSpec {
  const [kind, ...opts] = text.split(',');
  if (kind !== 'socket' && kind !== 'tap' && kind !== 'null') throw new UsageError(`--net ${text}: the kind is socket, tap or null (e.g. socket,connect=127.0.0.1:5555 or tap,ifname=tap0)`);
  const spec: NetSpec = { kind, text };
  for (const o of opts) {
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    const value = eq < 0 ? '' : o.slice(eq + 1);
    if (key === 'listen' && kind === 'socket') spec.listen = parseHostPort(value, text);
    else if (key === 'connect' && kind === 'socket') spec.connect = parseHostPort(value, text);
    else if (key === 'ifname' && kind === 'tap' && value) spec.ifname = value;
    else if (key === 'mac') {
      const mac = parseMac(value);
      if (!mac) throw new UsageError(`--net ${text}: "${value}" is not a unicast MAC address (like 52:54:00:12:34:56)`);
      spec.mac = mac;
    } else if (key === 'dump' && value) spec.dump = value;
    else throw new UsageError(`--net ${text}: unknown option "${o}" (${kind === 'socket' ? 'listen=, connect=, ' : kind === 'tap' ? 'ifname=, ' : ''}mac=, dump=)`);
  }
  if (kind === 'socket' && (spec.listen ? 1 : 0) + (spec.connect ? 1 : 0) !== 1) {
    throw new UsageError(`--net ${text}: a socket link needs exactly one of listen=[HOST:]PORT or connect=[HOST:]PORT`);
  }
  return spec;
}

/** Splits a byte stream into length-prefixed frames. */
export class FrameDecoder {
  private buf = new Uint8Array(0);

  /** Feed bytes; returns the complete frames. Throws RangeError on a length no peer would send. */
  push(data: Uint8Array): Uint8Array[] {
    const all = new Uint8Array(this.buf.length + data.length);
    all.set(this.buf);
    all.set(data, this.buf.length);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (all.length - at >= 4) {
      const len = new DataView(all.buffer, all.byteOffset + at, 4).getUint32(0, false);
      if (len > MAX_STREAM_FRAME) throw new RangeError(`frame length ${len} over ${MAX_STREAM_FRAME}`);
      if (all.length - at - 4 < len) break;
      frames.push(all.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    this.buf = all.slice(at);
    return frames;
  }
}

export function encodeFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length, false);
  out.set(frame, 4);
  return out;
}

class StreamLink implements NetLink {
  onFrame: ((frame: Uint8Array) => void) | null = null;
  readonly stats: NetLinkStats = { framesOut: 0, framesIn: 0, framesDropped: 0, peer: null };
  private socket: net.Socket | null = null;
  private server: net.Server | null = null;

  constructor(readonly describe: string, private readonly log: (line: string) => void) {}

  /** Take `s` as the peer (a listening link drops an earlier one, like a cable moved over). */
  adopt(s: net.Socket): void {
    this.socket?.destroy();
    this.socket = s;
    s.setNoDelay(true);
    const decoder = new FrameDecoder();
    const peer = `${s.remoteAddress}:${s.remotePort}`;
    this.stats.peer = peer;
    this.log(`net: ${this.describe}: peer ${peer} connected`);
    s.on('data', (d: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(new Uint8Array(d.buffer, d.byteOffset, d.length));
      } catch (e) {
        this.log(`net: ${this.describe}: peer ${peer} sent a broken stream (${(e as Error).message}); disconnected`);
        s.destroy();
        return;
      }
      for (const f of frames) {
        this.stats.framesIn++;
        this.onFrame?.(f);
      }
    });
    s.on('close', () => {
      if (this.socket === s) { this.socket = null; this.stats.peer = null; }
      this.log(`net: ${this.describe}: peer ${peer} gone`);
    });
    s.on('error', () => {});
  }

  listen(hp: HostPort): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((s) => this.adopt(s));
      server.once('error', (e) => reject(new HostError(`--net socket,listen=${hp.host}:${hp.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      server.listen(hp.port, hp.host, () => {
        this.server = server;
        server.removeAllListeners('error');
        server.on('error', () => {});
        resolve();
      });
    });
  }

  async connect(hp: HostPort): Promise<void> {
    const until = Date.now() + CONNECT_RETRY_MS;
    for (;;) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const c = net.connect(hp.port, hp.host);
          c.once('connect', () => { c.removeAllListeners('error'); resolve(c); });
          c.once('error', reject);
        });
        this.adopt(s);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' || Date.now() >= until) throw new HostError(`--net socket,connect=${hp.host}:${hp.port}: ${code ?? (e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  send(frame: Uint8Array): void {
    if (!this.socket || this.socket.destroyed) { this.stats.framesDropped++; return; }
    this.stats.framesOut++;
    this.socket.write(encodeFrame(frame));
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
    this.server?.close();
    this.server = null;
  }
}

class NullLink implements NetLink {
  onFrame: ((frame: Uint8Array) => void) | null = null;
  readonly stats: NetLinkStats = { framesOut: 0, framesIn: 0, framesDropped: 0, peer: null };
  readonly describe = 'null';
  send(): void {
    this.stats.framesDropped++;
  }
  close(): void {}
}

/** A link that also writes every frame, both ways, to a pcap file. */
class DumpingLink implements NetLink {
  private inner: NetLink;
  private readonly pcap: PcapWriter;
  onFrame: ((frame: Uint8Array) => void) | null = null;

  constructor(inner: NetLink, file: string) {
    this.inner = inner;
    try {
      this.pcap = new PcapWriter(file);
    } catch (e) {
      throw new UsageError(`--net dump=${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    inner.onFrame = (f) => { this.pcap.write(f); this.onFrame?.(f); };
  }

  get describe(): string { return `${this.inner.describe}, dump ${this.pcap.path}`; }
  get stats(): NetLinkStats { return this.inner.stats; }
  send(frame: Uint8Array): void {
    this.pcap.write(frame);
    this.inner.send(frame);
  }
  close(): void {
    this.inner.close();
    this.pcap.close();
  }
}

/** Open the host side of a NIC: listen or connect now, so that a bad spec fails before the guest runs. */
export async function openNetLink(spec: NetSpec, log: (line: string) => void = () => {}): Promise<NetLink> {
  let link: NetLink;
  if (spec.kind === 'null') link = new NullLink();
  else if (spec.kind === 'tap') link = new TapLink(spec.ifname, log);
  else {
    const hp = (spec.listen ?? spec.connect)!;
    const s = new StreamLink(`socket ${spec.listen ? 'listen' : 'connect'} ${hp.host}:${hp.port}`, log);
    if (spec.listen) await s.listen(hp);
    else await s.connect(hp);
    link = s;
  }
  return spec.dump ? new DumpingLink(link, spec.dump) : link;
}
