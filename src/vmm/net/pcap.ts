import { closeSync, openSync, writeSync } from 'node:fs';

// A capture of every Ethernet frame that crosses a virtual NIC, in the classic libpcap format
// (magic 0xa1b2c3d4, version 2.4, LINKTYPE_ETHERNET = 1), which tcpdump, tshark and Wireshark read.

const PCAP_MAGIC = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;

/** The 24-byte global header of a pcap file. */
export function pcapHeader(): Uint8Array {
  const h = new Uint8Array(24);
  const v = new DataView(h.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  // thiszone and sigfigs stay 0
  v.setUint32(16, SNAPLEN, true);
  v.setUint32(20, LINKTYPE_ETHERNET, true);
  return h;
}

/** One record: 16-byte header (seconds, microseconds, captured and original length) + the frame. */
export function pcapRecord(frame: Uint8Array, timeUs: bigint): Uint8Array {
  const r = new Uint8Array(16 + frame.length);
  const v = new DataView(r.buffer);
  v.setUint32(0, Number(timeUs / 1_000_000n), true);
  v.setUint32(4, Number(timeUs % 1_000_000n), true);
  v.setUint32(8, frame.length, true);
  v.setUint32(12, frame.length, true);
  r.set(frame, 16);
  return r;
}

export class PcapWriter {
  private fd: number | null;

  constructor(readonly path: string, private readonly clockUs: () => bigint = () => BigInt(Date.now()) * 1000n) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, pcapHeader());
  }

  write(frame: Uint8Array): void {
    if (this.fd !== null) writeSync(this.fd, pcapRecord(frame, this.clockUs()));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
