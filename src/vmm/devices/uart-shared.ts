import { withLock } from '../hot/spinlock.js';
import {
  UART_FIFO, UCON_TXTHRESH_ENA, UFSTAT_RXFULL, UTRSTAT_RXDR, UTRSTAT_TXE, UTRSTAT_TXFE, UTRSTAT_TXTHRESH, uartRegs,
} from '../regmaps/uart.js';

// The s5l UART's state that must be visible to more than one thread, in one SharedArrayBuffer:
// the latched status bits, the RX FIFO fill, the control registers the console path reads, and a
// ring of transmitted bytes. The device model (uart.ts, main thread) owns it; a KVM vCPU thread
// serves the registers the map marks `hot` from it without a round trip to the main thread:
// the polled console path (UFCON, UTRSTAT/UFSTAT, UTXH), which is nearly every MMIO exit of a
// booting Linux. Anything that could change the interrupt level stays on the main thread.

const LOCK = 0;
/** 1 while the hot path may serve accesses (off under --trace mmio, or when asked). */
const ENABLED = 1;
const STATUS = 2;
const RX_COUNT = 3;
const UCON = 4;
const UFCON = 5;
/** TX ring: free-running head (next write) and tail (next read) counters. */
const TX_HEAD = 6;
const TX_TAIL = 7;
const HOT_READS = 8;
const HOT_WRITES = 9;
const WORDS = 16;
export const UART_TX_RING = 4096;

const offsetOf = (name: string): number => {
  const r = uartRegs.regs.find((d) => d.name === name);
  if (!r) throw new Error(`uart map has no ${name}`);
  return r.offset;
};
const UCON_OFF = offsetOf('UCON');
const UFCON_OFF = offsetOf('UFCON');
const UTRSTAT_OFF = offsetOf('UTRSTAT');
const UFSTAT_OFF = offsetOf('UFSTAT');
const UTXH_OFF = offsetOf('UTXH');

const TXTHRESH_ENA = Number(UCON_TXTHRESH_ENA);
const TX_ALWAYS = Number(UTRSTAT_TXFE | UTRSTAT_TXE);

export class UartShared {
  readonly words: Int32Array;
  private readonly ring: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(WORDS * 4 + UART_TX_RING)) {
    this.words = new Int32Array(buffer, 0, WORDS);
    this.ring = new Uint8Array(buffer, WORDS * 4, UART_TX_RING);
  }

  get enabled(): boolean {
    return Atomics.load(this.words, ENABLED) === 1;
  }

  set enabled(on: boolean) {
    Atomics.store(this.words, ENABLED, on ? 1 : 0);
  }

  // ---- the device's side (main thread) ------------------------------------------------------

  get status(): number {
    return Atomics.load(this.words, STATUS);
  }

  setStatusBits(bits: number): void {
    Atomics.or(this.words, STATUS, bits);
  }

  clearStatusBits(bits: number): void {
    Atomics.and(this.words, STATUS, ~bits);
  }

  setRxCount(n: number): void {
    Atomics.store(this.words, RX_COUNT, n);
  }

  setUfcon(v: number): void {
    Atomics.store(this.words, UFCON, v);
  }

  /** Change UCON under the lock, so a hot UTXH never acts on the old value; `also` runs inside. */
  setUcon(v: number, also?: () => void): void {
    withLock(this.words, LOCK, () => {
      Atomics.store(this.words, UCON, v);
      also?.();
    });
  }

  /** Take the bytes the hot path transmitted, oldest first. */
  drainTx(): Uint8Array | null {
    // Only this side moves the tail: an empty ring needs no lock (every device access asks).
    if (Atomics.load(this.words, TX_HEAD) === Atomics.load(this.words, TX_TAIL)) return null;
    return withLock(this.words, LOCK, () => {
      const head = this.words[TX_HEAD]!;
      const tail = this.words[TX_TAIL]!;
      const n = (head - tail) | 0;
      if (n === 0) return null;
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = this.ring[(tail + i) & (UART_TX_RING - 1)]!;
      this.words[TX_TAIL] = head;
      return out;
    });
  }

  get hotReads(): number {
    return Atomics.load(this.words, HOT_READS);
  }

  get hotWrites(): number {
    return Atomics.load(this.words, HOT_WRITES);
  }

  /** Power-on state (the ring must have been drained by the caller). */
  reset(): void {
    withLock(this.words, LOCK, () => {
      for (const w of [STATUS, RX_COUNT, UCON, UFCON, TX_HEAD, TX_TAIL, HOT_READS, HOT_WRITES]) this.words[w] = 0;
    });
  }

  // ---- the hot path (any thread) --------------------------------------------------------------

  /** Serve a read of a `hot: 'read'` register; null sends the access to the device model. */
  hotRead(offset: number): number | null {
    const w = this.words;
    if (Atomics.load(w, ENABLED) !== 1) return null;
    let v: number;
    switch (offset) {
      case UTRSTAT_OFF: {
        const rx = Atomics.load(w, RX_COUNT);
        v = Atomics.load(w, STATUS) | TX_ALWAYS | (rx ? Number(UTRSTAT_RXDR) : 0);
        break;
      }
      case UFSTAT_OFF: {
        const rx = Atomics.load(w, RX_COUNT);
        v = rx >= UART_FIFO ? Number(UFSTAT_RXFULL) : rx;
        break;
      }
      case UCON_OFF:
        v = Atomics.load(w, UCON);
        break;
      case UFCON_OFF:
        v = Atomics.load(w, UFCON);
        break;
      default:
        return null;
    }
    Atomics.add(w, HOT_READS, 1);
    return v >>> 0;
  }

  /** Serve a write of a `hot: 'write'` register; false sends it to the device model. A byte for
   *  UTXH is queued while the TX-threshold interrupt is off: then the write cannot change the
   *  interrupt level, only the latched TXTHRESH status bit, which the shared state carries. */
  hotWrite(offset: number, value: number): boolean {
    const w = this.words;
    if (offset !== UTXH_OFF || Atomics.load(w, ENABLED) !== 1) return false;
    return withLock(w, LOCK, () => {
      if (w[UCON]! & TXTHRESH_ENA) return false;
      const head = w[TX_HEAD]!;
      if (((head - w[TX_TAIL]!) | 0) >= UART_TX_RING) return false; // full: the device drains it first
      this.ring[head & (UART_TX_RING - 1)] = value & 0xff;
      w[TX_HEAD] = (head + 1) | 0;
      Atomics.or(w, STATUS, Number(UTRSTAT_TXTHRESH));
      Atomics.add(w, HOT_WRITES, 1);
      return true;
    });
  }
}

/** Offsets the map marks hot, for tests and docs: every one of them must be served above. */
export const UART_HOT_REGISTERS = uartRegs.regs.filter((r) => r.hot).map((r) => ({ name: r.name, offset: r.offset, hot: r.hot! }));
