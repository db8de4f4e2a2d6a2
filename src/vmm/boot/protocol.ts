import type { Machine } from '../machine.js';

// Boot protocols load a guest into a machine and say where vCPU 0 starts. The VMM dispatches on
// the manifest's `guest` ("linux" here, "xnu" in boot/xnu.ts): each protocol registers itself.

export interface BootInputs {
  kernel: Uint8Array;
  /** Linux: FDT; XNU: Apple device tree. */
  deviceTree?: Uint8Array;
  initrd?: Uint8Array;
  /** XNU ramdisk image. */
  ramdisk?: Uint8Array;
  bootArgs: string;
  /** XNU: Darwin version ("21.4.0") choosing the boot_args layout. */
  darwin?: string;
}

export interface BootEntry {
  /** Where vCPU 0 starts (physical; MMU off, EL1). */
  pc: bigint;
  /** x0 at entry (FDT or boot_args address). */
  x0: bigint;
  /** Human-readable placement for --verbose and the summary. */
  placed: Array<{ what: string; base: bigint; size: bigint }>;
}

export interface BootProtocol {
  readonly name: string;
  load(machine: Machine, inputs: BootInputs): BootEntry;
}

const protocols = new Map<string, BootProtocol>();

export function registerBootProtocol(p: BootProtocol): void {
  protocols.set(p.name, p);
}

export function bootProtocol(name: string): BootProtocol | undefined {
  return protocols.get(name);
}

export function bootProtocolNames(): string[] {
  return [...protocols.keys()];
}
