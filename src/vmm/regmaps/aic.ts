import type { RegMap } from '../regmap.js';

// Apple Interrupt Controller v1 (t8103). Behaviour spec: Linux drivers/irqchip/irq-apple-aic.c.
// The per-IRQ bit arrays are laid out for AIC_MAX_IRQ = 0x400 IRQs (32 words each).

export const AIC_MAX_IRQ = 0x400;
const WORDS = AIC_MAX_IRQ / 32;

export const AIC_EVENT_TYPE_IRQ = 1;
export const AIC_EVENT_TYPE_IPI = 4;
export const AIC_EVENT_IPI_OTHER = 1;
export const AIC_EVENT_IPI_SELF = 2;
export const AIC_IPI_OTHER = 1n;
export const AIC_IPI_SELF = 1n << 31n;

export const aicRegs: RegMap = {
  compatible: 'apple,t8103-aic',
  source: 'Linux drivers/irqchip/irq-apple-aic.c (AIC v1)',
  regs: [
    { name: 'INFO', offset: 0x0004, width: 4, access: 'ro', doc: 'bits 15:0: number of IRQs' },
    { name: 'CONFIG', offset: 0x0010, width: 4, access: 'rw' },
    { name: 'WHOAMI', offset: 0x2000, width: 4, access: 'ro', perCpu: true, doc: 'number of the reading CPU' },
    { name: 'EVENT', offset: 0x2004, width: 4, access: 'ro', perCpu: true, doc: 'type (23:16) and number (15:0) of the highest pending event; reading masks it' },
    { name: 'IPI_SEND', offset: 0x2008, width: 4, access: 'wo', perCpu: true, doc: 'bit n: IPI to CPU n; bit 31: self-IPI' },
    { name: 'IPI_ACK', offset: 0x200c, width: 4, access: 'wo', perCpu: true },
    { name: 'IPI_MASK_SET', offset: 0x2024, width: 4, access: 'wo', perCpu: true },
    { name: 'IPI_MASK_CLR', offset: 0x2028, width: 4, access: 'wo', perCpu: true },
    { name: 'TARGET_CPU', offset: 0x3000, width: 4, access: 'rw', count: AIC_MAX_IRQ, doc: 'CPU mask that receives IRQ n' },
    { name: 'SW_SET', offset: 0x4000, width: 4, access: 'rw', count: WORDS, doc: 'software-assert IRQs (write 1s); reads the software state' },
    { name: 'SW_CLR', offset: 0x4080, width: 4, access: 'rw', count: WORDS },
    { name: 'MASK_SET', offset: 0x4100, width: 4, access: 'rw', count: WORDS, reset: 0xffffffffn, doc: 'mask IRQs (write 1s); reads the mask' },
    { name: 'MASK_CLR', offset: 0x4180, width: 4, access: 'rw', count: WORDS },
    { name: 'HW_STATE', offset: 0x4200, width: 4, access: 'ro', count: WORDS, doc: 'level of each hardware input' },
  ],
};
