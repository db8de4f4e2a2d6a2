import { closeSync, openSync, writeSync } from 'node:fs';
import net from 'node:net';
import { UsageError } from '../errors.js';

// Where the UART goes: stdout (input from stdin), a file, or a TCP socket on 127.0.0.1 that one
// client (telnet, nc) can attach to.

export interface SerialPort {
  write(bytes: Uint8Array): void;
  /** Host input towards the guest. */
  onInput: ((bytes: Uint8Array) => void) | null;
  describe: string;
  close(): void;
}

export async function openSerial(spec: string, interactiveStdin: boolean, log?: (line: string) => void): Promise<SerialPort> {
  if (spec === 'stdio') {
    const port: SerialPort = {
      describe: 'stdout',
      onInput: null,
      write: (b) => { process.stdout.write(b); },
      close: () => {
        if (interactiveStdin) {
          process.stdin.removeListener('data', listener);
          process.stdin.pause();
        }
      },
    };
    const listener = (d: Buffer) => port.onInput?.(new Uint8Array(d));
    if (interactiveStdin) {
      process.stdin.on('data', listener);
      process.stdin.resume();
    }
    return port;
  }
  if (spec === 'stderr') return { describe: 'stderr', onInput: null, write: (b) => { process.stderr.write(b); }, close: () => {} };
  if (spec === 'null') return { describe: 'discarded', onInput: null, write: () => {}, close: () => {} };
  if (spec.startsWith('file:')) {
    const file = spec.slice(5);
    let fd: number;
    try {
      fd = openSync(file, 'w');
    } catch (e) {
      throw new UsageError(`--serial ${spec}: ${(e as Error).message}`);
    }
    return { describe: file, onInput: null, write: (b) => { writeSync(fd, b); }, close: () => closeSync(fd) };
  }
  if (spec.startsWith('tcp:')) {
    // Like qemu's "-serial tcp::PORT,server": wait for the first client before the guest runs, so
    // no output is lost; later clients replace it.
    const portNo = Number(spec.slice(4));
    if (!Number.isInteger(portNo) || portNo < 0 || portNo > 65535) throw new UsageError(`--serial ${spec}: not a TCP port`);
    let client: net.Socket | null = null;
    let firstClient: (() => void) | null = null;
    const server = net.createServer((s) => {
      client?.destroy();
      client = s;
      s.on('data', (d) => port.onInput?.(new Uint8Array(d)));
      s.on('close', () => { if (client === s) client = null; });
      s.on('error', () => {});
      firstClient?.();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UsageError(`--serial ${spec}: ${e.message}`)));
      server.listen(portNo, '127.0.0.1', () => resolve());
    });
    const addr = server.address() as net.AddressInfo;
    log?.(`serial: waiting for a console client on 127.0.0.1:${addr.port} (e.g. nc 127.0.0.1 ${addr.port})`);
    await new Promise<void>((resolve) => { firstClient = resolve; });
    firstClient = null;
    const port: SerialPort = {
      describe: `tcp 127.0.0.1:${addr.port}`,
      onInput: null,
      write: (b) => { client?.write(b); },
      close: () => { client?.end(); server.close(); },
    };
    return port;
  }
  throw new UsageError(`--serial ${spec}: use stdio, stderr, null, file:PATH or tcp:PORT`);
}
