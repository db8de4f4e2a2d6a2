import koffi from 'koffi';
import type { TypeObject } from 'koffi';
import { HostError } from '../../../errors.js';

// The Unicorn 2.1 C API through koffi. Numbers below are the values of Unicorn's public enums in
// include/unicorn/unicorn.h and arm64.h of the 2.1 series (checked against 2.1.1, the version
// Debian ships as libunicorn2t64; test/vmm/unicorn-ffi.test.ts pins them by behaviour).

export const UC_ARCH_ARM64 = 2;
export const UC_MODE_ARM = 0;
export const UC_CPU_ARM64_MAX = 3;
export const UC_PROT_ALL = 7;

export const UC_HOOK_INTR = 1 << 0;
export const UC_HOOK_INSN = 1 << 1;
export const UC_HOOK_CODE = 1 << 2;
export const UC_HOOK_MEM_READ_UNMAPPED = 1 << 4;
export const UC_HOOK_MEM_WRITE_UNMAPPED = 1 << 5;
export const UC_HOOK_MEM_FETCH_UNMAPPED = 1 << 6;
export const UC_ARM64_INS_SYS = 3;

/** uc_ctl control codes: type | nr << 26 | rw << 30 (UC_CTL_WRITE = 1). */
const ctlWrite = (type: number, nr: number) => (type | (nr << 26) | (1 << 30)) >>> 0;
export const UC_CTL_CPU_MODEL_WRITE = ctlWrite(7, 1);
export const UC_CTL_TB_REMOVE_CACHE_WRITE = ctlWrite(9, 2);
export const UC_CTL_TB_FLUSH_WRITE = ctlWrite(10, 0);
export const UC_CTL_TLB_FLUSH_WRITE = ctlWrite(11, 0);
export const UC_CTL_TCG_BUFFER_SIZE_WRITE = ctlWrite(13, 1);

/** uc_arm64_reg values. */
export const REG = {
  X29: 1, X30: 2, NZCV: 3, SP: 4,
  Q0: 104,
  X0: 199, // X0..X28 are consecutive
  PC: 260, CPACR_EL1: 261, TPIDR_EL0: 262, TPIDRRO_EL0: 263, TPIDR_EL1: 264, PSTATE: 265,
  ELR_EL1: 267, SP_EL0: 270, SP_EL1: 271, TTBR0_EL1: 274, TTBR1_EL1: 275,
  ESR_EL1: 277, FAR_EL1: 281, MAIR_EL1: 285, VBAR_EL1: 287, CP_REG: 290, FPCR: 291, FPSR: 292,
} as const;

/** Register id of x0..x30. */
export function xreg(n: number): number {
  return n <= 28 ? REG.X0 + n : n === 29 ? REG.X29 : REG.X30;
}

/** qemu's ARM exception numbers as the UC_HOOK_INTR callback reports them (target/arm/cpu.h). */
export const EXCP = {
  UDEF: 1, SWI: 2, PREFETCH_ABORT: 3, DATA_ABORT: 4, IRQ: 5, FIQ: 6, BKPT: 7,
  HVC: 11, HYP_TRAP: 12, SMC: 13, VIRQ: 14, VFIQ: 15,
} as const;

export const UC_ERR_NAMES = [
  'OK', 'NOMEM', 'ARCH', 'HANDLE', 'MODE', 'VERSION', 'READ_UNMAPPED', 'WRITE_UNMAPPED', 'FETCH_UNMAPPED',
  'HOOK', 'INSN_INVALID', 'MAP', 'WRITE_PROT', 'READ_PROT', 'FETCH_PROT', 'ARG', 'READ_UNALIGNED',
  'WRITE_UNALIGNED', 'FETCH_UNALIGNED', 'HOOK_EXIST', 'RESOURCE', 'EXCEPTION', 'OVERFLOW',
];

export const LIBRARY_NAMES = ['libunicorn.so.2', 'libunicorn.so', 'libunicorn.2.dylib'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...args: any[]) => any;

export interface UnicornLib {
  path: string;
  version: { major: number; minor: number; patch: number };
  uc_open: Fn;
  uc_close: Fn;
  uc_ctl: Fn;
  uc_reg_read: Fn;
  uc_reg_write: Fn;
  uc_mem_map_ptr: Fn;
  uc_mmio_map: Fn;
  uc_mem_read: Fn;
  uc_mem_write: Fn;
  uc_emu_start: Fn;
  uc_emu_stop: Fn;
  uc_hook_add: Fn;
  uc_hook_del: Fn;
  uc_strerror: Fn;
  IntrCb: TypeObject;
  SysCb: TypeObject;
  MmioReadCb: TypeObject;
  MmioWriteCb: TypeObject;
  CodeCb: TypeObject;
}

let cached: UnicornLib | null | undefined;
let loadError = '';

/** Load libunicorn once; null when absent (see unicornLoadError()). */
export function tryLoadUnicorn(): UnicornLib | null {
  if (cached !== undefined) return cached;
  cached = null;
  const errors: string[] = [];
  for (const name of LIBRARY_NAMES) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(name);
    } catch (e) {
      errors.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    const IntrCb = koffi.proto(`void m1prep_uc_intr_cb(void *uc, uint32_t intno, void *user)`);
    const SysCb = koffi.proto(`uint32_t m1prep_uc_sys_cb(void *uc, int reg, void *cp, void *user)`);
    const MmioReadCb = koffi.proto(`uint64_t m1prep_uc_mmio_read_cb(void *uc, uint64_t offset, unsigned int size, void *user)`);
    const MmioWriteCb = koffi.proto(`void m1prep_uc_mmio_write_cb(void *uc, uint64_t offset, unsigned int size, uint64_t value, void *user)`);
    const CodeCb = koffi.proto(`void m1prep_uc_code_cb(void *uc, uint64_t address, uint32_t size, void *user)`);
    const ver = lib.func('unsigned int uc_version(_Out_ unsigned int *major, _Out_ unsigned int *minor)');
    const maj = [0], min = [0];
    const combined = ver(maj, min) as number;
    cached = {
      path: name,
      version: { major: maj[0]!, minor: min[0]!, patch: (combined >> 8) & 0xff },
      uc_open: lib.func('int uc_open(int arch, int mode, _Out_ void **uc)'),
      uc_close: lib.func('int uc_close(void *uc)'),
      uc_ctl: lib.func('int uc_ctl(void *uc, uint32_t control, ...)'),
      uc_reg_read: lib.func('int uc_reg_read(void *uc, int regid, void *value)'),
      uc_reg_write: lib.func('int uc_reg_write(void *uc, int regid, void *value)'),
      uc_mem_map_ptr: lib.func('int uc_mem_map_ptr(void *uc, uint64_t address, size_t size, uint32_t perms, void *ptr)'),
      uc_mmio_map: lib.func(`int uc_mmio_map(void *uc, uint64_t address, size_t size, m1prep_uc_mmio_read_cb *read_cb, void *user_read, m1prep_uc_mmio_write_cb *write_cb, void *user_write)`),
      uc_mem_read: lib.func('int uc_mem_read(void *uc, uint64_t address, _Out_ uint8_t *bytes, size_t size)'),
      uc_mem_write: lib.func('int uc_mem_write(void *uc, uint64_t address, const uint8_t *bytes, size_t size)'),
      uc_emu_start: lib.func('int uc_emu_start(void *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count)'),
      uc_emu_stop: lib.func('int uc_emu_stop(void *uc)'),
      uc_hook_add: lib.func('int uc_hook_add(void *uc, _Out_ size_t *hh, int type, void *callback, void *user_data, uint64_t begin, uint64_t end, ...)'),
      uc_hook_del: lib.func('int uc_hook_del(void *uc, size_t hh)'),
      uc_strerror: lib.func('const char *uc_strerror(int code)'),
      IntrCb, SysCb, MmioReadCb, MmioWriteCb, CodeCb,
    };
    return cached;
  }
  loadError = errors.join('; ');
  return null;
}

export function unicornLoadError(): string {
  return loadError;
}

/** The loaded library, or a HostError that says how to get it. */
export function loadUnicorn(): UnicornLib {
  const lib = tryLoadUnicorn();
  if (!lib) throw new HostError(`the software CPU backend needs Unicorn 2.1 (libunicorn.so.2; scripts/setup.sh installs libunicorn2t64): ${loadError}`);
  if (!versionOk(lib.version)) {
    throw new HostError(`Unicorn ${lib.version.major}.${lib.version.minor}.${lib.version.patch} is too old: the software backend needs 2.1 or newer (2.0 checks guest virtual addresses against the physical map)`);
  }
  return lib;
}

export function versionOk(v: { major: number; minor: number }): boolean {
  return v.major > 2 || (v.major === 2 && v.minor >= 1);
}

/** Throw a HostError for a failed Unicorn call. */
export function check(lib: UnicornLib, rc: number, what: string): void {
  if (rc !== 0) throw new HostError(`unicorn: ${what}: ${lib.uc_strerror(rc) as string} (UC_ERR_${UC_ERR_NAMES[rc] ?? rc})`);
}
