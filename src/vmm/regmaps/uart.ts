import type { RegMap } from '../regmap.js';

// Samsung/Apple s5l UART (apple,s5l-uart). Behaviour spec: Linux drivers/tty/serial/samsung_tty.c
// and include/linux/serial_s3c.h (the S3C2410 FIFO layout, Apple's threshold interrupts).

export const UTRSTAT_RXDR = 1n << 0n;
export const UTRSTAT_TXFE = 1n << 1n;
export const UTRSTAT_TXE = 1n << 2n;
export const UTRSTAT_RXTHRESH = 1n << 4n;
export const UTRSTAT_TXTHRESH = 1n << 5n;
export const UTRSTAT_RXTO = 1n << 9n;
export const UTRSTAT_W1C = 0x3f0n;
export const UCON_RXTO_ENA = 1n << 9n;
export const UCON_RXTHRESH_ENA = 1n << 12n;
export const UCON_TXTHRESH_ENA = 1n << 13n;
export const UFSTAT_RXMASK = 0xfn;
export const UFSTAT_RXFULL = 1n << 8n;
export const UART_FIFO = 16;

export const uartRegs: RegMap = {
  compatible: 'apple,s5l-uart',
  source: 'Linux drivers/tty/serial/samsung_tty.c, include/linux/serial_s3c.h',
  regs: [
    { name: 'ULCON', offset: 0x00, width: 4, access: 'rw', reset: 0x3n },
    { name: 'UCON', offset: 0x04, width: 4, access: 'rw', hot: 'read' },
    { name: 'UFCON', offset: 0x08, width: 4, access: 'rw', hot: 'read', doc: 'earlycon reads it before every character' },
    { name: 'UMCON', offset: 0x0c, width: 4, access: 'rw' },
    { name: 'UTRSTAT', offset: 0x10, width: 4, access: 'w1c', hot: 'read', doc: 'RXDR 0, TXFE 1, TXE 2; RXTHRESH 4, TXTHRESH 5, RXTO 9 are write-1-to-clear' },
    { name: 'UERSTAT', offset: 0x14, width: 4, access: 'ro' },
    { name: 'UFSTAT', offset: 0x18, width: 4, access: 'ro', hot: 'read', doc: 'RX count 3:0, RX full 8; TX count 7:4 (always 0: TX drains at once)' },
    { name: 'UMSTAT', offset: 0x1c, width: 4, access: 'ro' },
    { name: 'UTXH', offset: 0x20, width: 4, access: 'wo', hot: 'write', doc: 'hot only while the TX-threshold interrupt is off (polled console output)' },
    { name: 'URXH', offset: 0x24, width: 4, access: 'ro' },
    { name: 'UBRDIV', offset: 0x28, width: 4, access: 'rw' },
    { name: 'UFRACVAL', offset: 0x2c, width: 4, access: 'rw' },
  ],
};
