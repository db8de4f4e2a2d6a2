// The KVM userspace ABI this backend uses, as data. Every number and offset comes from the public
// uapi headers of Debian's linux-source-6.1: include/uapi/linux/kvm.h (generic),
// arch/arm64/include/uapi/asm/kvm.h (arm64) and include/uapi/asm-generic/ioctl.h (_IOC), except
// the two out-of-tree values of host-patch/kvm-impdef-sysreg-exits and KVM_CAP_ARM_WRITABLE_IMP_ID_REGS
// (Linux 6.15). test/vmm/kvm-uapi.test.ts checks every value against the headers compiled by
// Debian's aarch64 cross compiler.

/** include/uapi/asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr. */
const IOC_NONE = 0, IOC_WRITE = 1, IOC_READ = 2;
const KVMIO = 0xae;
const ioc = (dir: number, nr: number, size: number): number => ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;

/** Sizes of the structures the ioctls carry (kvm.h / asm/kvm.h). */
export const SIZEOF = {
  kvm_userspace_memory_region: 32,
  kvm_irq_level: 8,
  kvm_mp_state: 4,
  kvm_enable_cap: 104,
  kvm_one_reg: 16,
  kvm_vcpu_init: 32,
  /** struct kvm_guest_debug: control, pad, then arch: dbg_bcr[16], dbg_bvr[16], dbg_wcr[16], dbg_wvr[16]. */
  kvm_guest_debug: 520,
} as const;

/** offsetof(struct kvm_guest_debug, ...) (asm/kvm.h: struct kvm_guest_debug_arch). */
export const GUEST_DEBUG = { control: 0, dbg_bcr: 8, dbg_bvr: 136 } as const;
/** kvm_guest_debug.control bits (kvm.h, asm/kvm.h). */
export const KVM_GUESTDBG_ENABLE = 0x1;
export const KVM_GUESTDBG_SINGLESTEP = 0x2;
export const KVM_GUESTDBG_USE_HW = 1 << 17;

export const IOCTL = {
  KVM_GET_API_VERSION: ioc(IOC_NONE, 0x00, 0),
  KVM_CREATE_VM: ioc(IOC_NONE, 0x01, 0),
  KVM_CHECK_EXTENSION: ioc(IOC_NONE, 0x03, 0),
  KVM_GET_VCPU_MMAP_SIZE: ioc(IOC_NONE, 0x04, 0),
  KVM_CREATE_VCPU: ioc(IOC_NONE, 0x41, 0),
  KVM_SET_USER_MEMORY_REGION: ioc(IOC_WRITE, 0x46, SIZEOF.kvm_userspace_memory_region),
  KVM_IRQ_LINE: ioc(IOC_WRITE, 0x61, SIZEOF.kvm_irq_level),
  KVM_RUN: ioc(IOC_NONE, 0x80, 0),
  KVM_GET_MP_STATE: ioc(IOC_READ, 0x98, SIZEOF.kvm_mp_state),
  KVM_SET_MP_STATE: ioc(IOC_WRITE, 0x99, SIZEOF.kvm_mp_state),
  KVM_ENABLE_CAP: ioc(IOC_WRITE, 0xa3, SIZEOF.kvm_enable_cap),
  KVM_GET_ONE_REG: ioc(IOC_WRITE, 0xab, SIZEOF.kvm_one_reg),
  KVM_SET_ONE_REG: ioc(IOC_WRITE, 0xac, SIZEOF.kvm_one_reg),
  KVM_ARM_VCPU_INIT: ioc(IOC_WRITE, 0xae, SIZEOF.kvm_vcpu_init),
  KVM_ARM_PREFERRED_TARGET: ioc(IOC_READ, 0xaf, SIZEOF.kvm_vcpu_init),
  KVM_SET_GUEST_DEBUG: ioc(IOC_WRITE, 0x9b, SIZEOF.kvm_guest_debug),
} as const;

export const KVM_API_VERSION = 12;

/** KVM_CHECK_EXTENSION / KVM_ENABLE_CAP numbers. */
export const CAP = {
  KVM_CAP_USER_MEMORY: 3,
  KVM_CAP_MP_STATE: 14,
  KVM_CAP_SET_GUEST_DEBUG: 23,
  KVM_CAP_ONE_REG: 70,
  KVM_CAP_GUEST_DEBUG_HW_BPS: 119,
  KVM_CAP_IMMEDIATE_EXIT: 136,
  KVM_CAP_ARM_USER_IRQ: 144,
  KVM_CAP_ARM_VM_IPA_SIZE: 165,
  KVM_CAP_ARM_NISV_TO_USER: 177,
  /** Linux 6.15 (not in 6.1's header): MIDR/REVIDR/AIDR writable. */
  KVM_CAP_ARM_WRITABLE_IMP_ID_REGS: 239,
  /** host-patch/kvm-impdef-sysreg-exits (out of tree). */
  KVM_CAP_ARM_IMPDEF_SYSREG_EXITS: 0x10001,
} as const;

export const EXIT = {
  KVM_EXIT_UNKNOWN: 0,
  KVM_EXIT_DEBUG: 4,
  KVM_EXIT_MMIO: 6,
  KVM_EXIT_SHUTDOWN: 8,
  KVM_EXIT_FAIL_ENTRY: 9,
  KVM_EXIT_INTR: 10,
  KVM_EXIT_INTERNAL_ERROR: 17,
  KVM_EXIT_SYSTEM_EVENT: 24,
  KVM_EXIT_ARM_NISV: 28,
  /** host-patch/kvm-impdef-sysreg-exits (out of tree). */
  KVM_EXIT_ARM_IMPDEF_SYSREG: 0x10001,
} as const;

/** Byte offsets in struct kvm_run (the mmap'd page of a vCPU fd). */
export const RUN = {
  immediate_exit: 1,
  exit_reason: 8,
  /** The exit union starts here; its members: */
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  arm_nisv_esr_iss: 32,
  arm_nisv_fault_ipa: 40,
  system_event_type: 32,
  fail_entry_hardware_entry_failure_reason: 32,
  internal_suberror: 32,
  /** struct kvm_debug_exit_arch: the ESR of the debug exception. */
  debug_hsr: 32,
  /** host-patch/kvm-impdef-sysreg-exits: struct arm_impdef_sysreg in the exit union. */
  impdef_op0: 32,
  impdef_op1: 33,
  impdef_crn: 34,
  impdef_crm: 35,
  impdef_op2: 36,
  impdef_is_write: 37,
  impdef_rt: 38,
  impdef_flags: 39,
  impdef_value: 40,
  /** run->s.regs.device_irq_level (arm64 struct kvm_sync_regs) */
  device_irq_level: 304,
} as const;

/** run->s.regs.device_irq_level bits (KVM_CAP_ARM_USER_IRQ). */
export const KVM_ARM_DEV_EL1_VTIMER = 1 << 0;
export const KVM_ARM_DEV_EL1_PTIMER = 1 << 1;
export const KVM_ARM_DEV_PMU = 1 << 2;

/** KVM_IRQ_LINE with no in-kernel irqchip: irq = type << 24 | vcpu << 16 | line. */
export const KVM_ARM_IRQ_TYPE_SHIFT = 24;
export const KVM_ARM_IRQ_VCPU_SHIFT = 16;
export const KVM_ARM_IRQ_TYPE_CPU = 0;
export const KVM_ARM_IRQ_CPU_IRQ = 0;
export const KVM_ARM_IRQ_CPU_FIQ = 1;

export function irqLineNumber(vcpu: number, line: number): number {
  return ((KVM_ARM_IRQ_TYPE_CPU << KVM_ARM_IRQ_TYPE_SHIFT) | ((vcpu & 0xff) << KVM_ARM_IRQ_VCPU_SHIFT) | line) >>> 0;
}

/** struct kvm_vcpu_init.features[0] bits. */
export const KVM_ARM_VCPU_POWER_OFF = 0;
export const KVM_ARM_VCPU_PSCI_0_2 = 2;

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_STOPPED = 5;

/** KVM_EXIT_SYSTEM_EVENT types. */
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;

/** KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF in run->arm_impdef_sysreg.flags (the patch). */
export const KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF = 1;

// ONE_REG ids (asm/kvm.h): KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | offsetof(struct kvm_regs, x) / 4.
export const KVM_REG_ARM64 = 0x6000000000000000n;
export const KVM_REG_SIZE_U64 = 0x0030000000000000n;
export const KVM_REG_SIZE_U128 = 0x0040000000000000n;
export const KVM_REG_ARM_CORE = 0x0010n << 16n;
export const KVM_REG_ARM64_SYSREG = 0x0013n << 16n;

/** offsetof(struct kvm_regs, ...) in bytes. */
export const KVM_REGS = {
  regs_x0: 0,
  regs_sp: 248,
  regs_pc: 256,
  regs_pstate: 264,
  fp_regs_vregs: 336,
} as const;

export function coreReg(byteOffset: number, size = KVM_REG_SIZE_U64): bigint {
  return KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | BigInt(byteOffset / 4);
}

export const REG_ID = {
  x: (n: number) => coreReg(KVM_REGS.regs_x0 + 8 * n),
  sp: coreReg(KVM_REGS.regs_sp),
  pc: coreReg(KVM_REGS.regs_pc),
  pstate: coreReg(KVM_REGS.regs_pstate),
  v: (n: number) => coreReg(KVM_REGS.fp_regs_vregs + 16 * n, KVM_REG_SIZE_U128),
};

/** ARM64_SYS_REG(op0, op1, crn, crm, op2) */
export function sysregId(op0: number, op1: number, crn: number, crm: number, op2: number): bigint {
  return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG |
    BigInt((op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2);
}
