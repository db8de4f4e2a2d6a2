import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DmaError, RamGuestMemory } from '../../src/vmm/devices/pcie-dma.js';
import { SplitVirtqueue, VirtioError, VIRTQ_DESC_F_WRITE } from '../../src/vmm/devices/virtio-queue.js';
import { MAX_FRAME, RX_QUEUE, TX_QUEUE, VIRTIO_NET_HDR_SIZE, VirtioNet } from '../../src/vmm/devices/virtio-net.js';

// virtio-net on its own, over real split rings in a RAM buffer laid out as a driver lays them
// (descriptor table, driver ring, device ring), as Linux's virtio_net posts them: transmit chains
// of header + frame, receive buffers of one writable descriptor each. The transport and the whole
// path through a real Linux driver are covered by linux-guest.test.ts.

const BASE = 0x8_0000_0000n;
const SIZE = 8;

class Ring {
  readonly vq: SplitVirtqueue;
  private avail = 0;
  private nextDesc = 0;
  private used = 0;
  constructor(readonly ram: Uint8Array, readonly mem: RamGuestMemory, readonly at: number) {
    this.vq = new SplitVirtqueue(mem, SIZE);
    this.vq.descAddr = BASE + BigInt(at);
    this.vq.driverAddr = BASE + BigInt(at + 16 * SIZE);
    this.vq.deviceAddr = BASE + BigInt(at + 0x200);
    this.vq.validate();
    this.vq.enabled = true;
  }
  private dv(): DataView { return new DataView(this.ram.buffer); }
  /** Make a chain of buffers (ram offsets) available; returns its head. */
  post(bufs: Array<{ off: number; len: number; write: boolean }>): number {
    const v = this.dv();
    const head = this.nextDesc;
    bufs.forEach((b, i) => {
      const d = this.at + 16 * ((head + i) % SIZE);
      v.setBigUint64(d, BASE + BigInt(b.off), true);
      v.setUint32(d + 8, b.len, true);
      v.setUint16(d + 12, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i < bufs.length - 1 ? 1 : 0), true);
      v.setUint16(d + 14, (head + i + 1) % SIZE, true);
    });
    this.nextDesc = (head + bufs.length) % SIZE;
    const drv = this.at + 16 * SIZE;
    v.setUint16(drv + 4 + 2 * (this.avail % SIZE), head, true);
    this.avail++;
    v.setUint16(drv + 2, this.avail, true);
    return head;
  }
  /** Used entries the device published since the last call: [head, length]. */
  takeUsed(): Array<[number, number]> {
    const v = this.dv();
    const dev = this.at + 0x200;
    const idx = v.getUint16(dev + 2, true);
    const out: Array<[number, number]> = [];
    for (; this.used !== idx; this.used = (this.used + 1) & 0xffff) {
      const e = dev + 4 + 8 * (this.used % SIZE);
      out.push([v.getUint32(e, true), v.getUint32(e + 4, true)]);
    }
    return out;
  }
}

function setup() {
  const ram = new Uint8Array(1 << 16);
  const mem = new RamGuestMemory([{ base: BASE, size: BigInt(ram.length), bytes: ram }]);
  const sent: Uint8Array[] = [];
  const nic = new VirtioNet(Uint8Array.of(0x52, 0x54, 0, 1, 2, 3), { send: (f) => sent.push(f) });
  const rx = new Ring(ram, mem, 0x0000);
  const tx = new Ring(ram, mem, 0x1000);
  const kicks: number[] = [];
  nic.attach((q) => { kicks.push(q); nic.processQueue(q, q === RX_QUEUE ? rx.vq : tx.vq, mem); });
  return { ram, mem, nic, rx, tx, sent, kicks };
}

const frameOf = (n: number, fill: number) => Uint8Array.from({ length: n }, (_, i) => (i < 6 ? 0xff : (fill + i) & 0xff));

describe('virtio-net device', () => {
  it('config space: MAC, link up, MTU', () => {
    const { nic } = setup();
    expect([...nic.config.subarray(0, 6)]).toEqual([0x52, 0x54, 0, 1, 2, 3]);
    const v = new DataView(nic.config.buffer);
    expect(v.getUint16(6, true)).toBe(1); // VIRTIO_NET_S_LINK_UP
    expect(v.getUint16(10, true)).toBe(1500);
  });

  it('transmits the frame after the 12-byte header, across descriptors', () => {
    const { ram, nic, tx, mem, sent } = setup();
    const f = frameOf(60, 7);
    ram.set(f.subarray(0, 20), 0x3000 + VIRTIO_NET_HDR_SIZE); // header + first part in one buffer
    ram.set(f.subarray(20), 0x3800);
    const head = tx.post([{ off: 0x3000, len: VIRTIO_NET_HDR_SIZE + 20, write: false }, { off: 0x3800, len: 40, write: false }]);
    nic.processQueue(TX_QUEUE, tx.vq, mem);
    expect(sent).toEqual([f]);
    expect(tx.takeUsed()).toEqual([[head, 0]]);
    expect(nic.stats).toMatchObject({ txFrames: 1, txBytes: 60 });
  });

  it('holds frames until the driver posts receive buffers, then fills them with header + frame', () => {
    const { ram, nic, rx, kicks } = setup();
    const a = frameOf(64, 1), b = frameOf(100, 2);
    nic.receive(a);
    nic.receive(b);
    expect(rx.takeUsed()).toEqual([]); // no buffers yet: both wait
    const h1 = rx.post([{ off: 0x4000, len: 1526, write: true }]);
    const h2 = rx.post([{ off: 0x5000, len: 1526, write: true }]);
    nic.processQueue(RX_QUEUE, rx.vq, new RamGuestMemory([{ base: BASE, size: BigInt(ram.length), bytes: ram }]));
    expect(rx.takeUsed()).toEqual([[h1, 12 + 64], [h2, 12 + 100]]);
    expect(ram[0x4000 + 10]).toBe(1); // num_buffers
    expect([...ram.subarray(0x4000, 0x4000 + 10)].every((x) => x === 0)).toBe(true); // no offload flags
    expect(ram.subarray(0x4000 + 12, 0x4000 + 12 + 64)).toEqual(a);
    expect(ram.subarray(0x5000 + 12, 0x5000 + 12 + 100)).toEqual(b);
    expect(kicks).toEqual([RX_QUEUE, RX_QUEUE]);
    expect(nic.stats).toMatchObject({ rxFrames: 2, rxBytes: 164, rxDropped: 0 });
  });

  it('drops what a NIC drops: oversized or runt frames, frames for a buffer too small, a full backlog', () => {
    const { nic, rx, mem } = setup();
    nic.receive(frameOf(MAX_FRAME + 1, 0));
    nic.receive(frameOf(10, 0));
    expect(nic.stats.rxDropped).toBe(2);
    const small = rx.post([{ off: 0x4000, len: 40, write: true }]);
    nic.receive(frameOf(64, 3));
    expect(rx.takeUsed()).toEqual([[small, 0]]);
    expect(nic.stats.rxDropped).toBe(3);
    for (let i = 0; i < 300; i++) nic.receive(frameOf(64, i));
    expect(nic.stats.rxDropped).toBe(3 + 300 - 256);
    nic.reset();
    rx.post([{ off: 0x4000, len: 1526, write: true }]);
    nic.processQueue(RX_QUEUE, rx.vq, mem);
    expect(rx.takeUsed()).toEqual([]); // the reset emptied the backlog
  });
});

describe('virtio-net under a hostile driver', () => {
  it('random descriptor tables and ring indices: frames go through or the device reports a driver error, never anything else', () => {
    let tx = 0, rx = 0, driverErrors = 0;
    const desc = fc.record({
      // Mostly plausible: inside RAM, sizes a driver uses, the two flags; sometimes anything.
      off: fc.oneof({ arbitrary: fc.integer({ min: 0x3000, max: 0xf000 }), weight: 9 }, { arbitrary: fc.integer({ min: -0x10000, max: 0x7fff_ffff }), weight: 1 }),
      len: fc.oneof({ arbitrary: fc.constantFrom(12, 40, 74, 1526, 4096), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }), weight: 1 }),
      flags: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
      next: fc.oneof({ arbitrary: fc.integer({ min: 0, max: SIZE - 1 }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
    });
    const ring = fc.record({
      table: fc.array(desc, { minLength: SIZE, maxLength: SIZE }),
      heads: fc.array(fc.oneof({ arbitrary: fc.integer({ min: 0, max: SIZE - 1 }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }), { minLength: SIZE, maxLength: SIZE }),
      idx: fc.oneof({ arbitrary: fc.integer({ min: 0, max: SIZE }), weight: 9 }, { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 }),
    });
    fc.assert(fc.property(ring, ring, fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 4 }), (rxRing, txRing, frames) => {
      const { ram, mem, nic, rx: rxq, tx: txq, sent } = setup();
      const v = new DataView(ram.buffer);
      for (const [q, r] of [[rxq, rxRing], [txq, txRing]] as const) {
        r.table.forEach((d, i) => {
          const at = q.at + 16 * i;
          v.setBigUint64(at, BASE + BigInt(d.off) & 0xffff_ffff_ffff_ffffn, true);
          v.setUint32(at + 8, d.len, true);
          v.setUint16(at + 12, d.flags, true);
          v.setUint16(at + 14, d.next, true);
        });
        r.heads.forEach((h, i) => v.setUint16(q.at + 16 * SIZE + 4 + 2 * i, h, true));
        v.setUint16(q.at + 16 * SIZE + 2, r.idx, true);
      }
      const serve = (f: () => void) => {
        try {
          f();
        } catch (e) {
          // What the transport turns into DEVICE_NEEDS_RESET; anything else would be a VMM bug.
          if (!(e instanceof VirtioError) && !(e instanceof DmaError)) throw e;
          driverErrors++;
        }
      };
      for (const n of frames) serve(() => nic.receive(frameOf(n, n)));
      serve(() => nic.processQueue(RX_QUEUE, rxq.vq, mem));
      serve(() => nic.processQueue(TX_QUEUE, txq.vq, mem));
      tx += sent.length;
      rx += nic.stats.rxFrames;
      for (const f of sent) expect(f.length).toBeLessThanOrEqual(MAX_FRAME);
    }), { numRuns: 1500 });
    expect(tx, 'the fuzzer never produced a transmittable chain').toBeGreaterThan(0);
    expect(rx, 'the fuzzer never produced a usable receive buffer').toBeGreaterThan(0);
    expect(driverErrors, 'the fuzzer never produced a driver error').toBeGreaterThan(0);
  });
});
