import { FormatError, UsageError } from '../../errors.js';

// XNU's arm64 boot_args (pexpert/pexpert/arm64/boot.h), declared as data: one layout per
// BOOT_LINE_LENGTH. The kernel never checks Revision to pick a layout; it was compiled for one, so
// the loader must pick it from the kernel's Darwin version or bootFlags/memSizeActual land where the
// kernel does not look.

export type FieldType = 'u16' | 'u32' | 'u64' | 'cstring';

export interface BootArgsField {
  name: keyof BootArgsValues;
  offset: number;
  type: FieldType;
  /** Bytes, for cstring fields. */
  length?: number;
}

export interface BootArgsLayout {
  /** XNU's BOOT_LINE_LENGTH for these releases. */
  bootLineLength: number;
  /** Darwin major versions using it (inclusive). */
  darwin: { min: number; max: number };
  /** The Revision iBoot writes with this layout. */
  revision: number;
  size: number;
  fields: BootArgsField[];
}

export interface BootArgsValues {
  Revision: number;
  Version: number;
  virtBase: bigint;
  physBase: bigint;
  memSize: bigint;
  topOfKernelData: bigint;
  videoBaseAddr: bigint;
  videoDisplay: bigint;
  videoRowBytes: bigint;
  videoWidth: bigint;
  videoHeight: bigint;
  videoDepth: bigint;
  machineType: number;
  /** A kernel virtual address. */
  deviceTreeP: bigint;
  deviceTreeLength: number;
  CommandLine: string;
  bootFlags: bigint;
  memSizeActual: bigint;
}

const common = (bootLine: number): BootArgsField[] => {
  const tail = (0x6c + bootLine + 7) & ~7; // bootFlags is 8-aligned after CommandLine
  return [
    { name: 'Revision', offset: 0x00, type: 'u16' },
    { name: 'Version', offset: 0x02, type: 'u16' },
    { name: 'virtBase', offset: 0x08, type: 'u64' },
    { name: 'physBase', offset: 0x10, type: 'u64' },
    { name: 'memSize', offset: 0x18, type: 'u64' },
    { name: 'topOfKernelData', offset: 0x20, type: 'u64' },
    { name: 'videoBaseAddr', offset: 0x28, type: 'u64' },
    { name: 'videoDisplay', offset: 0x30, type: 'u64' },
    { name: 'videoRowBytes', offset: 0x38, type: 'u64' },
    { name: 'videoWidth', offset: 0x40, type: 'u64' },
    { name: 'videoHeight', offset: 0x48, type: 'u64' },
    { name: 'videoDepth', offset: 0x50, type: 'u64' },
    { name: 'machineType', offset: 0x58, type: 'u32' },
    { name: 'deviceTreeP', offset: 0x60, type: 'u64' },
    { name: 'deviceTreeLength', offset: 0x68, type: 'u32' },
    { name: 'CommandLine', offset: 0x6c, type: 'cstring', length: bootLine },
    { name: 'bootFlags', offset: tail, type: 'u64' },
    { name: 'memSizeActual', offset: tail + 8, type: 'u64' },
  ];
};

export const BOOT_ARGS_LAYOUTS: readonly BootArgsLayout[] = [
  // xnu-6153 .. xnu-8796: macOS 11-13 (Darwin 20-22). bootFlags at 0x2d0, 0x2e0 bytes.
  { bootLineLength: 608, darwin: { min: 20, max: 22 }, revision: 2, size: 0x2e0, fields: common(608) },
  // xnu-10002 onwards: macOS 14+ (Darwin 23+). bootFlags at 0x470, 0x480 bytes.
  { bootLineLength: 1024, darwin: { min: 23, max: 99 }, revision: 3, size: 0x480, fields: common(1024) },
];

export function darwinMajorOf(darwin: string): number {
  const m = /^(\d+)\.\d+(\.\d+)?$/.exec(darwin);
  if (!m) throw new UsageError(`Darwin version "${darwin}" is not X.Y.Z`);
  return Number(m[1]);
}

export function bootArgsLayoutFor(darwin: string): BootArgsLayout {
  const major = darwinMajorOf(darwin);
  const l = BOOT_ARGS_LAYOUTS.find((x) => major >= x.darwin.min && major <= x.darwin.max);
  if (!l) throw new UsageError(`no boot_args layout known for Darwin ${darwin} (m1prep knows Darwin 20 and later: macOS 11+)`);
  return l;
}

export function writeBootArgs(layout: BootArgsLayout, v: BootArgsValues): Uint8Array {
  const out = new Uint8Array(layout.size);
  const dv = new DataView(out.buffer);
  for (const f of layout.fields) {
    const value = v[f.name];
    switch (f.type) {
      case 'u16': dv.setUint16(f.offset, Number(value), true); break;
      case 'u32': dv.setUint32(f.offset, Number(value), true); break;
      case 'u64': dv.setBigUint64(f.offset, BigInt.asUintN(64, value as bigint), true); break;
      case 'cstring': {
        const bytes = new TextEncoder().encode(String(value));
        if (bytes.length >= f.length!) throw new UsageError(`boot-args are ${bytes.length} bytes; this kernel's command line holds ${f.length! - 1}`);
        out.set(bytes, f.offset);
        break;
      }
    }
  }
  return out;
}

export function readBootArgs(layout: BootArgsLayout, bytes: Uint8Array): BootArgsValues {
  if (bytes.length < layout.size) throw new FormatError('boot_args', BigInt(bytes.length), `${bytes.length} bytes, the layout needs ${layout.size}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const v: Record<string, unknown> = {};
  for (const f of layout.fields) {
    switch (f.type) {
      case 'u16': v[f.name] = dv.getUint16(f.offset, true); break;
      case 'u32': v[f.name] = dv.getUint32(f.offset, true); break;
      case 'u64': v[f.name] = dv.getBigUint64(f.offset, true); break;
      case 'cstring': {
        const raw = bytes.subarray(f.offset, f.offset + f.length!);
        const end = raw.indexOf(0);
        v[f.name] = new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end));
        break;
      }
    }
  }
  return v as unknown as BootArgsValues;
}
