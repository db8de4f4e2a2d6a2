import type { GuestMemory } from './pcie-dma.js';
import { gather, scatter, totalLength, VirtioError, type SplitVirtqueue } from './virtio-queue.js';
import type { VirtioDevice } from './virtio-pci.js';

// virtio-net (OASIS virtio v1.2, section 5.1): one receive and one transmit queue, no offloads.
// Every frame in either direction is preceded by struct virtio_net_hdr, 12 bytes once
// VIRTIO_F_VERSION_1 is negotiated (5.1.6); with no offload features offered its flags and GSO
// fields are zero. Frames go to and come from a NetLink (src/vmm/net): the device neither knows
// nor cares whether the other end is a socket, a file or another VM.

export const VIRTIO_ID_NET = 1;
const PCI_CLASS_NETWORK_ETHERNET = 0x020000;

// Feature bits (5.1.3).
export const VIRTIO_NET_F_MTU = 1n << 3n;
export const VIRTIO_NET_F_MAC = 1n << 5n;
export const VIRTIO_NET_F_STATUS = 1n << 16n;
/** Link status bit of the config's status field (5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_hdr with num_buffers (5.1.6): its size under VIRTIO_F_VERSION_1. */
export const VIRTIO_NET_HDR_SIZE = 12;
export const VIRTIO_NET_QUEUE_SIZE = 256;
export const RX_QUEUE = 0;
export const TX_QUEUE = 1;
/** Ethernet header: destination and source MAC, EtherType. Anything shorter is not a frame. */
const ETH_HEADER = 14;
/** Ethernet MTU we advertise; a frame is at most MTU + header + 4 (VLAN tag) bytes. */
export const VIRTIO_NET_MTU = 1500;
export const MAX_FRAME = VIRTIO_NET_MTU + ETH_HEADER + 4;
/** Frames from the link waiting for receive buffers; beyond this they are dropped, as a NIC would. */
const RX_BACKLOG = 256;
/** struct virtio_net_config up to and including mtu (mac[6], status, max_virtqueue_pairs, mtu). */
const CONFIG_SIZE = 12;

/** Where transmitted frames go; the link calls VirtioNet.receive() for frames in the other direction. */
export interface FrameSink {
  send(frame: Uint8Array): void;
}

export interface VirtioNetStats {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Frames from the link dropped: no receive buffer for too long, or larger than the MTU allows. */
  rxDropped: number;
  /** Transmit requests the device refused (a frame shorter than its header or over the MTU). */
  txErrors: number;
}

/** Parse "52:54:00:12:34:56" into 6 bytes; null when it is not a unicast MAC address. */
export function parseMac(text: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (!m) return null;
  const mac = Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
  return mac[0]! & 1 ? null : mac; // the group bit makes it a multicast address
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export class VirtioNet implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_NET;
  readonly classCode = PCI_CLASS_NETWORK_ETHERNET;
  readonly features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MTU;
  readonly queueSizes = [VIRTIO_NET_QUEUE_SIZE, VIRTIO_NET_QUEUE_SIZE];
  readonly config = new Uint8Array(CONFIG_SIZE);
  readonly stats: VirtioNetStats = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0, txErrors: 0 };
  private readonly backlog: Uint8Array[] = [];
  private kick: ((queue: number) => void) | null = null;

  constructor(readonly mac: Uint8Array, private readonly sink: FrameSink) {
    if (mac.length !== 6) throw new RangeError('virtio-net: a MAC address has 6 bytes');
    this.config.set(mac, 0);
    const v = new DataView(this.config.buffer);
    v.setUint16(6, VIRTIO_NET_S_LINK_UP, true);
    v.setUint16(8, 1, true); // max_virtqueue_pairs: one pair (valid only with MQ, which we do not offer)
    v.setUint16(10, VIRTIO_NET_MTU, true);
  }

  attach(kick: (queue: number) => void): void {
    this.kick = kick;
  }

  reset(): void {
    // A reset driver has no receive buffers: frames queued for the old ones are gone.
    this.backlog.length = 0;
  }

  /** A frame from the link. Delivered into the guest's receive buffers now or when it posts some. */
  receive(frame: Uint8Array): void {
    if (frame.length > MAX_FRAME || frame.length < ETH_HEADER) { this.stats.rxDropped++; return; }
    if (this.backlog.length >= RX_BACKLOG) { this.stats.rxDropped++; return; }
    this.backlog.push(frame);
    this.kick?.(RX_QUEUE);
  }

  processQueue(queue: number, vq: SplitVirtqueue, mem: GuestMemory): void {
    if (queue === TX_QUEUE) this.transmit(vq, mem);
    else if (queue === RX_QUEUE) this.fillReceive(vq, mem);
  }

  private transmit(vq: SplitVirtqueue, mem: GuestMemory): void {
    for (let chain = vq.pop(); chain; chain = vq.pop()) {
      const len = totalLength(chain.readable) - VIRTIO_NET_HDR_SIZE;
      if (len < 0 || len > MAX_FRAME) {
        this.stats.txErrors++;
      } else {
        const frame = new Uint8Array(len);
        gather(mem, chain.readable, VIRTIO_NET_HDR_SIZE, frame);
        this.stats.txFrames++;
        this.stats.txBytes += len;
        this.sink.send(frame);
      }
      vq.push(chain.head, 0);
    }
  }

  private fillReceive(vq: SplitVirtqueue, mem: GuestMemory): void {
    while (this.backlog.length > 0) {
      const chain = vq.pop();
      if (!chain) return; // no buffer: the frames wait for the driver's next notify
      if (chain.readable.length > 0) throw new VirtioError('virtio-net: receive buffer with device-readable descriptors');
      const frame = this.backlog.shift()!;
      const room = totalLength(chain.writable);
      if (room < VIRTIO_NET_HDR_SIZE + frame.length) {
        // Without VIRTIO_NET_F_MRG_RXBUF every buffer must hold a whole frame (5.1.6.3.1).
        this.stats.rxDropped++;
        vq.push(chain.head, 0);
        continue;
      }
      const hdr = new Uint8Array(VIRTIO_NET_HDR_SIZE);
      hdr[10] = 1; // num_buffers: the frame fits in this one chain
      scatter(mem, chain.writable, 0, hdr);
      scatter(mem, chain.writable, VIRTIO_NET_HDR_SIZE, frame);
      this.stats.rxFrames++;
      this.stats.rxBytes += frame.length;
      vq.push(chain.head, VIRTIO_NET_HDR_SIZE + frame.length);
    }
  }
}
