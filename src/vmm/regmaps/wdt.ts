import type { RegMap } from '../regmap.js';

// Apple watchdog (apple,t8103-wdt). Behaviour spec: Linux drivers/watchdog/apple_wdt.c. The
// counters run at the 24 MHz reference clock; WD1 is the system reset watchdog.

export const WDT_HZ = 24_000_000n;
export const WDT_CTRL_IRQ_EN = 1n;
export const WDT_CTRL_IRQ_STATUS = 2n;
export const WDT_CTRL_RESET_EN = 4n;

export const wdtRegs: RegMap = {
  compatible: 'apple,t8103-wdt',
  source: 'Linux drivers/watchdog/apple_wdt.c',
  regs: [
    { name: 'WD0_CUR_TIME', offset: 0x00, width: 4, access: 'rw' },
    { name: 'WD0_BITE_TIME', offset: 0x04, width: 4, access: 'rw' },
    { name: 'WD0_BARK_TIME', offset: 0x08, width: 4, access: 'rw' },
    { name: 'WD0_CTRL', offset: 0x0c, width: 4, access: 'rw' },
    { name: 'WD1_CUR_TIME', offset: 0x10, width: 4, access: 'rw', doc: 'counts up at 24 MHz' },
    { name: 'WD1_BITE_TIME', offset: 0x14, width: 4, access: 'rw', doc: 'reset when CUR_TIME reaches it with RESET_EN' },
    { name: 'WD1_CTRL', offset: 0x1c, width: 4, access: 'rw', doc: 'IRQ_EN 0, IRQ_STATUS 1, RESET_EN 2' },
    { name: 'WD2_CUR_TIME', offset: 0x20, width: 4, access: 'rw' },
    { name: 'WD2_BITE_TIME', offset: 0x24, width: 4, access: 'rw' },
    { name: 'WD2_CTRL', offset: 0x2c, width: 4, access: 'rw' },
  ],
};
