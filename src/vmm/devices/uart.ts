import type { AccessSize, IrqLine, MmioDevice } from '../device.js';
import { RegisterFile, findReg } from '../regmap.js';
import {
  UART_FIFO, UCON_RXTHRESH_ENA, UCON_RXTO_ENA, UCON_TXTHRESH_ENA, UFSTAT_RXFULL, UTRSTAT_RXDR, UTRSTAT_RXTHRESH,
  UTRSTAT_RXTO, UTRSTAT_TXE, UTRSTAT_TXFE, UTRSTAT_TXTHRESH, UTRSTAT_W1C, uartRegs,
} from '../regmaps/uart.js';

// s5l UART: the transmitter drains at once (TX empty is always set), so each character written
// to UTXH goes straight to the output and raises the TX-threshold status; received bytes wait in a
// 16-byte FIFO. The interrupt is the OR of the enabled threshold/timeout statuses.

export class S5lUart implements MmioDevice {
  readonly regs = uartRegs;
  private readonly file = new RegisterFile(uartRegs);
  private status = 0n;
  private readonly rx: number[] = [];
  private level = false;
  /** Bytes the guest wrote. */
  txBytes = 0;

  constructor(
    readonly name: string,
    private readonly irq: IrqLine,
    private readonly output: (bytes: Uint8Array) => void,
  ) {}

  /** Host input (stdin, socket) for the guest; bytes beyond the FIFO are dropped, as on hardware. */
  receive(bytes: Uint8Array): void {
    for (const b of bytes) if (this.rx.length < UART_FIFO) this.rx.push(b);
    if (this.rx.length) this.status |= UTRSTAT_RXTHRESH | UTRSTAT_RXTO;
    this.update();
  }

  get rxSpace(): number {
    return UART_FIFO - this.rx.length;
  }

  read(offset: bigint, _size: AccessSize): bigint {
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return 0n;
    switch (hit.def.name) {
      case 'UTRSTAT':
        return this.status | UTRSTAT_TXFE | UTRSTAT_TXE | (this.rx.length ? UTRSTAT_RXDR : 0n);
      case 'UFSTAT':
        return this.rx.length >= UART_FIFO ? UFSTAT_RXFULL : BigInt(this.rx.length);
      case 'URXH': {
        const b = this.rx.shift();
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
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return;
    switch (hit.def.name) {
      case 'UTXH':
        this.txBytes++;
        this.output(Uint8Array.of(Number(value & 0xffn)));
        this.status |= UTRSTAT_TXTHRESH;
        break;
      case 'UTRSTAT':
        this.status &= ~(value & UTRSTAT_W1C);
        break;
      case 'UCON': {
        const before = this.file.get('UCON');
        this.file.set('UCON', value);
        // Enabling the TX-threshold interrupt with an empty FIFO reports "below threshold" at once.
        if (!(before & UCON_TXTHRESH_ENA) && value & UCON_TXTHRESH_ENA) this.status |= UTRSTAT_TXTHRESH;
        break;
      }
      case 'URXH': case 'UERSTAT': case 'UFSTAT': case 'UMSTAT':
        return;
      default:
        this.file.set(hit.def.name, value);
    }
    this.update();
  }

  private update(): void {
    const ucon = this.file.get('UCON');
    const level =
      (!!(ucon & UCON_TXTHRESH_ENA) && !!(this.status & UTRSTAT_TXTHRESH)) ||
      (!!(ucon & UCON_RXTHRESH_ENA) && !!(this.status & UTRSTAT_RXTHRESH)) ||
      (!!(ucon & UCON_RXTO_ENA) && !!(this.status & UTRSTAT_RXTO));
    if (level !== this.level) {
      this.level = level;
      this.irq.set(level);
    }
  }

  reset(): void {
    this.file.reset();
    this.status = 0n;
    this.rx.length = 0;
    this.update();
  }
}
