import type { AccessSize, IrqLine, MmioDevice } from '../device.js';
import { RegisterFile, findReg } from '../regmap.js';
import { WDT_CTRL_IRQ_EN, WDT_CTRL_IRQ_STATUS, WDT_CTRL_RESET_EN, WDT_HZ, wdtRegs } from '../regmaps/wdt.js';

// The t8103 watchdog: three counters running at 24 MHz. WD1 resets the system when its counter
// reaches BITE_TIME with RESET_EN set (Linux's restart handler does exactly that); the machine
// turns that into a "guest reset" stop. WD0's bark raises its interrupt.

export class AppleWdt implements MmioDevice {
  readonly regs = wdtRegs;
  private readonly file = new RegisterFile(wdtRegs);
  /** Host time (ns) at which each counter was last written, and the value written. */
  private readonly base = [0n, 0n, 0n];
  private readonly baseValue = [0n, 0n, 0n];
  fired = false;

  constructor(
    readonly name: string,
    private readonly irq: IrqLine,
    private readonly onReset: () => void,
    private readonly nowNs: () => bigint = () => process.hrtime.bigint(),
  ) {
    this.reset();
  }

  private counter(i: number): bigint {
    const ticks = ((this.nowNs() - this.base[i]!) * WDT_HZ) / 1_000_000_000n;
    return (this.baseValue[i]! + ticks) & 0xffffffffn;
  }

  read(offset: bigint, _size: AccessSize): bigint {
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return 0n;
    this.poll();
    const m = /^WD(\d)_CUR_TIME$/.exec(hit.def.name);
    return m ? this.counter(+m[1]!) : this.file.get(hit.def.name);
  }

  write(offset: bigint, _size: AccessSize, value: bigint): void {
    const hit = findReg(this.regs, Number(offset));
    if (!hit) return;
    const m = /^WD(\d)_CUR_TIME$/.exec(hit.def.name);
    if (m) {
      this.base[+m[1]!] = this.nowNs();
      this.baseValue[+m[1]!] = value;
    } else if (hit.def.name.endsWith('_CTRL')) {
      // IRQ_STATUS is write-1-to-clear.
      const old = this.file.get(hit.def.name);
      const status = old & WDT_CTRL_IRQ_STATUS & ~value;
      this.file.set(hit.def.name, (value & ~WDT_CTRL_IRQ_STATUS) | status);
    } else {
      this.file.set(hit.def.name, value);
    }
    this.poll();
  }

  /** Check the counters against their bite/bark times (the run loop calls this periodically). */
  poll(): void {
    const ctrl1 = this.file.get('WD1_CTRL');
    if (!this.fired && ctrl1 & WDT_CTRL_RESET_EN && this.counter(1) >= this.file.get('WD1_BITE_TIME')) {
      this.fired = true;
      this.onReset();
    }
    const ctrl0 = this.file.get('WD0_CTRL');
    if (ctrl0 & WDT_CTRL_IRQ_EN && this.file.get('WD0_BARK_TIME') !== 0n && this.counter(0) >= this.file.get('WD0_BARK_TIME')) {
      this.file.set('WD0_CTRL', ctrl0 | WDT_CTRL_IRQ_STATUS);
    }
    this.irq.set((this.file.get('WD0_CTRL') & (WDT_CTRL_IRQ_EN | WDT_CTRL_IRQ_STATUS)) === (WDT_CTRL_IRQ_EN | WDT_CTRL_IRQ_STATUS));
  }

  reset(): void {
    this.file.reset();
    const now = this.nowNs();
    for (let i = 0; i < 3; i++) {
      this.base[i] = now;
      this.baseValue[i] = 0n;
    }
    this.fired = false;
  }
}
