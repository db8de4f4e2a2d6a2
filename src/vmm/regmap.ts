// Register maps as data: each device's registers with offset, width, access and reset value. The
// models use them for reset state and register names, --trace mmio prints the names, and the tests
// walk them.

export type RegAccess = 'rw' | 'ro' | 'wo' | 'w1c';

export interface RegDef {
  name: string;
  offset: number;
  /** Bytes (4 for every register modelled so far). */
  width: 4 | 8;
  access: RegAccess;
  reset?: bigint;
  /** An array of `count` registers, `stride` bytes apart (default: width). */
  count?: number;
  stride?: number;
  /** Each CPU sees its own copy (AIC WHOAMI, EVENT...). */
  perCpu?: boolean;
  /** Served off the main thread from the device's shared state (a KVM vCPU thread): reads that
   *  have no side effect, writes whose effect the shared state can take (src/vmm/hot/). */
  hot?: 'read' | 'write';
  doc?: string;
}

export interface RegMap {
  /** Compatible string of the hardware this map describes. */
  compatible: string;
  /** Behaviour spec the model follows. */
  source: string;
  regs: readonly RegDef[];
}

export interface RegHit {
  def: RegDef;
  /** Element index for arrays, 0 otherwise. */
  index: number;
}

/** The register at `offset`, if any. */
export function findReg(map: RegMap, offset: number): RegHit | undefined {
  for (const def of map.regs) {
    const stride = def.stride ?? def.width;
    const span = (def.count ?? 1) * stride;
    if (offset >= def.offset && offset < def.offset + span) {
      const rel = offset - def.offset;
      if (rel % stride >= def.width) continue;
      return { def, index: Math.floor(rel / stride) };
    }
  }
  return undefined;
}

/** "MASK_SET[3]" or "UTXH" or "+0x1234" for trace output. */
export function regName(map: RegMap, offset: number): string {
  const hit = findReg(map, offset);
  if (!hit) return `+0x${offset.toString(16)}`;
  return hit.def.count && hit.def.count > 1 ? `${hit.def.name}[${hit.index}]` : hit.def.name;
}

/** Plain storage for the registers of a map: reset values, read/write by name. */
export class RegisterFile {
  private readonly values = new Map<string, bigint[]>();

  constructor(readonly map: RegMap) {
    this.reset();
  }

  reset(): void {
    for (const def of this.map.regs) this.values.set(def.name, new Array<bigint>(def.count ?? 1).fill(def.reset ?? 0n));
  }

  get(name: string, index = 0): bigint {
    return this.values.get(name)?.[index] ?? 0n;
  }

  set(name: string, value: bigint, index = 0): void {
    const arr = this.values.get(name);
    if (arr) arr[index] = value;
  }
}
