import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { EAGAIN, EINTR, POLLIN, libc } from '../../host/libc.js';

// The TAP link's reading thread: poll the non-blocking fd (100 ms at most, so that a quit request
// is seen), read each frame and post it to the main thread.

const { fd, quit: quitBuf } = workerData as { fd: number; quit: SharedArrayBuffer };
const quit = new Int32Array(quitBuf);
const c = libc();
const pfd = Buffer.alloc(8);
const buf = Buffer.alloc(65536 + 64);
while (Atomics.load(quit, 0) === 0) {
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  pfd.writeInt16LE(0, 6);
  const r = c.poll(pfd, 1, 100) as number;
  if (r <= 0) continue;
  for (;;) {
    const n = Number(c.read(fd, buf, buf.length));
    if (n > 0) {
      parentPort!.postMessage(new Uint8Array(buf.subarray(0, n)));
      continue;
    }
    const e = n < 0 ? koffi.errno() : 0;
    if (n < 0 && (e === EAGAIN || e === EINTR)) break;
    parentPort!.postMessage({ error: n === 0 ? 'the interface went away' : `read failed (errno ${e})` });
    Atomics.store(quit, 0, 1);
    break;
  }
}
