import { accessSync, constants, existsSync } from 'node:fs';
import { HostError } from '../../../errors.js';
import { O_CLOEXEC, O_RDWR, SC_PAGESIZE, lastError, libc } from '../../../host/libc.js';
import { CAP, IOCTL, KVM_API_VERSION } from './uapi.js';

// What this host's KVM offers an M1 guest: the architecture, /dev/kvm, the API version and the
// capabilities the backend uses. Shared by the backend (which refuses clearly) and `m1prep doctor`.

export interface KvmCaps {
  userIrq: boolean;
  nisvToUser: boolean;
  immediateExit: boolean;
  oneReg: boolean;
  mpState: boolean;
  /** Largest IPA size in bits (KVM_CAP_ARM_VM_IPA_SIZE; 0: fixed 40). */
  ipaSize: number;
  /** MIDR/REVIDR/AIDR writable (Linux 6.15+). */
  writableImpIdRegs: boolean;
  /** host-patch/kvm-impdef-sysreg-exits is in this kernel (and not switched off). */
  impdefSysregExits: boolean;
  /** KVM_SET_GUEST_DEBUG (single step) and how many hardware breakpoints it offers (--gdb). */
  guestDebug: boolean;
  hwBreakpoints: number;
}

export interface KvmProbe {
  arch: string;
  pageSize: number;
  devKvm: 'absent' | 'no-access' | 'ok';
  apiVersion: number | null;
  caps: KvmCaps | null;
  /** Why the backend cannot run here at all (null: it can). */
  problem: string | null;
}

export const SOFTWARE_HINT = 'use --backend software';

export const STOCK_KVM_PROBLEM =
  "this kernel's KVM lacks KVM_CAP_ARM_IMPDEF_SYSREG_EXITS, so every guest access to an Apple IMPLEMENTATION DEFINED " +
  'system register becomes UNDEF inside KVM: Linux with ARCH_APPLE (it reads PMCR0 on every FIQ and sends IPIs through the ' +
  'FastIPI registers), m1n1 and XNU (HID/PMU registers; XNU also needs GXF/SPRR, which no KVM offers) cannot run; ' +
  `apply host-patch/kvm-impdef-sysreg-exits (docs/kvm.md) or ${SOFTWARE_HINT}`;

function hostArch(): string {
  return process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
}

function check(fd: number, cap: number): number {
  const r = libc().ioctlInt(fd, IOCTL.KVM_CHECK_EXTENSION, cap) as number;
  return r < 0 ? 0 : r;
}

export function probeKvm(): KvmProbe {
  const arch = hostArch();
  const c = process.platform === 'linux' ? libc() : null;
  const pageSize = c ? Number(c.sysconf(SC_PAGESIZE)) : 0;
  let devKvm: KvmProbe['devKvm'] = 'absent';
  if (existsSync('/dev/kvm')) {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
      devKvm = 'ok';
    } catch {
      devKvm = 'no-access';
    }
  }
  const base = { arch, pageSize, devKvm, apiVersion: null, caps: null };
  if (process.platform !== 'linux' || arch !== 'aarch64') {
    const what = devKvm === 'absent' ? 'no /dev/kvm' : `/dev/kvm is ${arch} KVM`;
    return { ...base, problem: `KVM for an M1 guest needs an aarch64 Linux host (this one is ${process.platform}/${arch}: ${what}); ${SOFTWARE_HINT}` };
  }
  if (devKvm === 'absent') return { ...base, problem: `no /dev/kvm (is the kvm module loaded and the kernel entered at EL2?); ${SOFTWARE_HINT}` };
  if (devKvm === 'no-access') return { ...base, problem: `/dev/kvm is not readable and writable by this user (add it to the kvm group); ${SOFTWARE_HINT}` };
  const fd = c!.open('/dev/kvm', O_RDWR | O_CLOEXEC) as number;
  if (fd < 0) return { ...base, problem: `cannot open /dev/kvm: ${lastError()}` };
  try {
    const apiVersion = c!.ioctlInt(fd, IOCTL.KVM_GET_API_VERSION, 0) as number;
    if (apiVersion !== KVM_API_VERSION) {
      return { ...base, apiVersion, problem: `/dev/kvm speaks API version ${apiVersion}, not ${KVM_API_VERSION}` };
    }
    const caps: KvmCaps = {
      userIrq: check(fd, CAP.KVM_CAP_ARM_USER_IRQ) > 0,
      nisvToUser: check(fd, CAP.KVM_CAP_ARM_NISV_TO_USER) > 0,
      immediateExit: check(fd, CAP.KVM_CAP_IMMEDIATE_EXIT) > 0,
      oneReg: check(fd, CAP.KVM_CAP_ONE_REG) > 0,
      mpState: check(fd, CAP.KVM_CAP_MP_STATE) > 0,
      ipaSize: check(fd, CAP.KVM_CAP_ARM_VM_IPA_SIZE),
      writableImpIdRegs: check(fd, CAP.KVM_CAP_ARM_WRITABLE_IMP_ID_REGS) > 0,
      impdefSysregExits: check(fd, CAP.KVM_CAP_ARM_IMPDEF_SYSREG_EXITS) > 0,
      guestDebug: check(fd, CAP.KVM_CAP_SET_GUEST_DEBUG) > 0,
      hwBreakpoints: Math.max(0, check(fd, CAP.KVM_CAP_GUEST_DEBUG_HW_BPS)),
    };
    const missing = (['userIrq', 'immediateExit', 'oneReg', 'mpState'] as const).filter((k) => !caps[k]);
    const problem = missing.length
      ? `this KVM lacks ${missing.join(', ')} (the backend needs a userspace interrupt controller, immediate_exit, ONE_REG and MP_STATE)`
      : caps.impdefSysregExits ? null : STOCK_KVM_PROBLEM;
    return { ...base, apiVersion, caps, problem };
  } finally {
    c!.close(fd);
  }
}

/** The probe, or the HostError the backend refuses with. */
export function requireKvm(): KvmProbe & { caps: KvmCaps } {
  const p = probeKvm();
  if (p.problem || !p.caps) throw new HostError(`the KVM backend is not available on this host: ${p.problem ?? 'no capabilities'}`);
  return p as KvmProbe & { caps: KvmCaps };
}
