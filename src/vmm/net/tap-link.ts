import { Worker } from 'node:worker_threads';
import koffi from 'koffi';
import { EAGAIN, libc } from '../../host/libc.js';
import { openTap } from '../../host/tap.js';
import type { NetLink, NetLinkStats } from './link.js';

// `--net tap[,ifname=NAME]`: the NIC's cable goes into a host TAP interface, so the guest shares
// an Ethernet segment with the host's network stack (address it, bridge it, NAT it: the host's
// tools decide). Frames from the host arrive on a reading thread (tap-reader.ts); frames from the
// guest are written straight to the non-blocking fd, and dropped (counted) if the host queue is full.

export class TapLink implements NetLink {
  onFrame: ((frame: Uint8Array) => void) | null = null;
  readonly stats: NetLinkStats;
  readonly describe: string;
  private readonly fd: number;
  private readonly quit = new Int32Array(new SharedArrayBuffer(4));
  private readonly reader: Worker;
  private closed = false;

  constructor(ifname: string | undefined, private readonly log: (line: string) => void) {
    const { fd, name } = openTap(ifname);
    this.fd = fd;
    this.describe = `tap ${name}`;
    this.stats = { framesOut: 0, framesIn: 0, framesDropped: 0, peer: name };
    this.reader = new Worker(new URL('./tap-reader.js', import.meta.url), { workerData: { fd, quit: this.quit.buffer } });
    this.reader.unref();
    this.reader.on('message', (m: Uint8Array | { error: string }) => {
      if (m instanceof Uint8Array) {
        this.stats.framesIn++;
        this.onFrame?.(m);
      } else {
        this.log(`net: ${this.describe}: ${m.error}`);
      }
    });
    this.reader.on('error', (e) => this.log(`net: ${this.describe}: reader failed: ${e.message}`));
    log(`net: ${this.describe} attached`);
  }

  send(frame: Uint8Array): void {
    if (this.closed) { this.stats.framesDropped++; return; }
    const n = Number(libc().write(this.fd, frame, frame.length));
    if (n === frame.length) this.stats.framesOut++;
    else {
      this.stats.framesDropped++;
      if (n < 0 && koffi.errno() !== EAGAIN) this.log(`net: ${this.describe}: write failed (errno ${koffi.errno()})`);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.quit, 0, 1);
    // The reader sees the flag within one poll period; the fd goes once it is gone.
    void this.reader.terminate().finally(() => libc().close(this.fd));
  }
}
