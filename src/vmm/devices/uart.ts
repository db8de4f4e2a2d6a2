import type { AccessSize, IrqLine, MmioDevice } from '../device.js';
import { RegisterFile, findReg } from '../regmap.js';
import {
  UART_FIFO, UCON_RXTHRESH_ENA, UCON_RXTO_ENA, UCON_TXTHRESH_ENA, UFSTAT_RXFULL, UTRSTAT_RXDR, UTRSTAT_RXTHRESH,
  UTRSTAT_RXTO, UTRSTAT_TXE, UTRSTAT_TXFE, UTRSTAT_TXTHRESH, UTRSTAT_W1C, uartRegs,
} from '../regmaps/uart.js';
import { UartShared } from './uart-shared.js';

// s5l UART: the transmitter drains at once (TX empty is always set), so each character written
// to UTXH goes straight to the output and raises the TX-threshold status; received bytes wait in a
// 16-byte FIFO. The interrupt is the OR of the enabled threshold/timeout statuses. The status
// bits, FIFO fill and UCON/UFCON live in `shared` (uart-shared.ts), so that a KVM vCPU thread can
// serve the polled console path itself; bytes it transmitted are drained here, in order.

export class S5lUart implements MmioDevice {
  readonly regs = uartRegs;
  readonly shared = new UartShared();
  private readonly file = new RegisterFile(uartRegs);
  private readonly rx: number[] = [];
  private level = false;
  private ownTxBytes = 0;

  constructor(
    readonly name: string,
    private readonly irq: IrqLine,
    private readonly output: (bytes: Uint8Array) => void,
  ) {}

  /** Bytes the guest wrote (here and through the hot path). */
  get txBytes(): number {
    return this.ownTxBytes + this.shared.hotWrites;
  }

  /** Host input (stdin, socket) for the guest; bytes beyond the FIFO are dropped, as on hardware. */
  receive(bytes: Uint8Array): void {
    for (const b of bytes) if (this.rx.length < UART_FIFO) this.rx.push(b);
    this.shared.setRxCount(this.rx.length);
    if (this.rx.length) this.shared.setStatusBits(Number(UTRSTAT_RXTHRESH | UTRSTAT_RXTO));
    this.update();
  }

  get rxSpace(): number {
    return UART_FIFO - this.rx.length;
  }

  /** Pass on what the hot path transmitted (every access here and the machine's poll call it). */
  drainTx(): void {
    const bytes = this.shared.drainTx();
    if (bytes) this.output(bytes);
  }

  private get status(): bigint {
    return BigInt(this.shared.status);
  }

  read(offset: bigint, _size: AccessSize): bigint {
    this.drainTx();
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return 0n;
    switch (hit.def.name) {
      case 'UTRSTAT':
        return this.status | UTRSTAT_TXFE | UTRSTAT_TXE | (this.rx.length ? UTRSTAT_RXDR : 0n);
      case 'UFSTAT':
        return this.rx.length >= UART_FIFO ? UFSTAT_RXFULL : BigInt(this.rx.length);
      case 'URXH': {
        const b = this.rx.shift();
        this.shared.setRxCount(this.rx.length);
        this.update();
        return BigInt(b ?? 0);
      }
      case 'UERSTAT': case 'UMSTAT': case 'UTXH':
        return 0n;
      default:
        return this.file.get(hit.def.name);
    }
  }

  write(offset: bigint, _size: AccessSize, value: bigint): void {
    this.drainTx();
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return;
    switch (hit.def.name) {
      case 'UTXH':
        this.ownTxBytes++;
        this.output(Uint8Array.of(Number(value & 0xffn)));
        this.shared.setStatusBits(Number(UTRSTAT_TXTHRESH));
        break;
      case 'UTRSTAT':
        this.shared.clearStatusBits(Number(value & UTRSTAT_W1C));
        break;
      case 'UCON': {
        const before = this.file.get('UCON');
        this.file.set('UCON', value);
        this.shared.setUcon(Number(value), () => {
          // Enabling the TX-threshold interrupt with an empty FIFO reports "below threshold" at once.
          if (!(before & UCON_TXTHRESH_ENA) && value & UCON_TXTHRESH_ENA) this.shared.setStatusBits(Number(UTRSTAT_TXTHRESH));
        });
        break;
      }
      case 'UFCON':
        this.file.set('UFCON', value);
        this.shared.setUfcon(Number(value));
        break;
      case 'URXH': case 'UERSTAT': case 'UFSTAT': case 'UMSTAT':
        return;
      default:
        this.file.set(hit.def.name, value);
    }
    this.update();
  }

  private update(): void {
    const ucon = this.file.get('UCON');
    const status = this.status;
    const level =
      (!!(ucon & UCON_TXTHRESH_ENA) && !!(status & UTRSTAT_TXTHRESH)) ||
      (!!(ucon & UCON_RXTHRESH_ENA) && !!(status & UTRSTAT_RXTHRESH)) ||
      (!!(ucon & UCON_RXTO_ENA) && !!(status & UTRSTAT_RXTO));
    if (level !== this.level) {
      this.level = level;
      this.irq.set(level);
    }
  }

  reset(): void {
    this.drainTx();
    this.file.reset();
    this.shared.reset();
    this.rx.length = 0;
    this.ownTxBytes = 0;
    this.update();
  }
}
