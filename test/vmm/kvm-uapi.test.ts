import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tool, which } from '../../src/host/tools.js';
import { repoRoot } from '../helpers/cli.js';
import { CAP, EXIT, GUEST_DEBUG, IOCTL, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW, KVM_ARM_DEV_EL1_PTIMER, KVM_ARM_DEV_EL1_VTIMER, KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF, KVM_ARM_IRQ_CPU_FIQ, KVM_ARM_IRQ_CPU_IRQ, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_VCPU_SHIFT, KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_MP_STATE_RUNNABLE, KVM_REGS, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, REG_ID, RUN, SIZEOF, sysregId } from '../../src/vmm/cpu/kvm/uapi.js';

// The backend's KVM ABI (src/vmm/cpu/kvm/uapi.ts) against the uapi headers themselves: Debian's
// arm64 kernel headers (linux-libc-dev-arm64-cross, Linux 6.1) with the uapi hunk of
// host-patch/kvm-impdef-sysreg-exits applied, compiled by Debian's aarch64 cross compiler. Every
// ioctl number, structure size, kvm_run offset and ONE_REG id comes out of the compiler.

const cc = tool('aarch64-linux-gnu-gcc');
const sysroot = '/usr/aarch64-linux-gnu/include';
const ready = cc !== null && existsSync(path.join(sysroot, 'linux/kvm.h')) && which(['patch']) !== null;
const patchDir = path.join(repoRoot, 'host-patch/kvm-impdef-sysreg-exits');

/** The hunks of the patch that touch one file (a complete patch for `patch -p1`). */
function hunksFor(patchText: string, file: string): string {
  const parts = patchText.split(/^(?=diff )/m);
  const part = parts.find((p) => p.includes(`+++ b/${file}`));
  if (!part) throw new Error(`the patch does not touch ${file}`);
  return part;
}

const values: Record<string, string> = {
  KVM_GET_API_VERSION: 'KVM_GET_API_VERSION', KVM_CREATE_VM: 'KVM_CREATE_VM', KVM_CHECK_EXTENSION: 'KVM_CHECK_EXTENSION',
  KVM_GET_VCPU_MMAP_SIZE: 'KVM_GET_VCPU_MMAP_SIZE', KVM_CREATE_VCPU: 'KVM_CREATE_VCPU', KVM_SET_USER_MEMORY_REGION: 'KVM_SET_USER_MEMORY_REGION',
  KVM_IRQ_LINE: 'KVM_IRQ_LINE', KVM_RUN: 'KVM_RUN', KVM_GET_MP_STATE: 'KVM_GET_MP_STATE', KVM_SET_MP_STATE: 'KVM_SET_MP_STATE',
  KVM_ENABLE_CAP: 'KVM_ENABLE_CAP', KVM_GET_ONE_REG: 'KVM_GET_ONE_REG', KVM_SET_ONE_REG: 'KVM_SET_ONE_REG',
  KVM_ARM_VCPU_INIT: 'KVM_ARM_VCPU_INIT', KVM_ARM_PREFERRED_TARGET: 'KVM_ARM_PREFERRED_TARGET', KVM_API_VERSION: 'KVM_API_VERSION',
  KVM_SET_GUEST_DEBUG: 'KVM_SET_GUEST_DEBUG', sizeof_kvm_guest_debug: 'sizeof(struct kvm_guest_debug)',
  gd_control: 'offsetof(struct kvm_guest_debug, control)', gd_dbg_bcr: 'offsetof(struct kvm_guest_debug, arch.dbg_bcr)',
  gd_dbg_bvr: 'offsetof(struct kvm_guest_debug, arch.dbg_bvr)', run_debug_hsr: 'offsetof(struct kvm_run, debug.arch.hsr)',
  KVM_GUESTDBG_ENABLE: 'KVM_GUESTDBG_ENABLE', KVM_GUESTDBG_SINGLESTEP: 'KVM_GUESTDBG_SINGLESTEP', KVM_GUESTDBG_USE_HW: 'KVM_GUESTDBG_USE_HW',
  KVM_CAP_SET_GUEST_DEBUG: 'KVM_CAP_SET_GUEST_DEBUG', KVM_CAP_GUEST_DEBUG_HW_BPS: 'KVM_CAP_GUEST_DEBUG_HW_BPS',
  sizeof_kvm_userspace_memory_region: 'sizeof(struct kvm_userspace_memory_region)', sizeof_kvm_irq_level: 'sizeof(struct kvm_irq_level)',
  sizeof_kvm_mp_state: 'sizeof(struct kvm_mp_state)', sizeof_kvm_enable_cap: 'sizeof(struct kvm_enable_cap)',
  sizeof_kvm_one_reg: 'sizeof(struct kvm_one_reg)', sizeof_kvm_vcpu_init: 'sizeof(struct kvm_vcpu_init)',
  run_immediate_exit: 'offsetof(struct kvm_run, immediate_exit)', run_exit_reason: 'offsetof(struct kvm_run, exit_reason)',
  run_mmio_phys_addr: 'offsetof(struct kvm_run, mmio.phys_addr)', run_mmio_data: 'offsetof(struct kvm_run, mmio.data)',
  run_mmio_len: 'offsetof(struct kvm_run, mmio.len)', run_mmio_is_write: 'offsetof(struct kvm_run, mmio.is_write)',
  run_arm_nisv_esr_iss: 'offsetof(struct kvm_run, arm_nisv.esr_iss)', run_arm_nisv_fault_ipa: 'offsetof(struct kvm_run, arm_nisv.fault_ipa)',
  run_system_event_type: 'offsetof(struct kvm_run, system_event.type)',
  run_fail_entry_hardware_entry_failure_reason: 'offsetof(struct kvm_run, fail_entry.hardware_entry_failure_reason)',
  run_internal_suberror: 'offsetof(struct kvm_run, internal.suberror)',
  run_device_irq_level: 'offsetof(struct kvm_run, s.regs.device_irq_level)',
  run_impdef_op0: 'offsetof(struct kvm_run, arm_impdef_sysreg.op0)', run_impdef_op1: 'offsetof(struct kvm_run, arm_impdef_sysreg.op1)',
  run_impdef_crn: 'offsetof(struct kvm_run, arm_impdef_sysreg.crn)', run_impdef_crm: 'offsetof(struct kvm_run, arm_impdef_sysreg.crm)',
  run_impdef_op2: 'offsetof(struct kvm_run, arm_impdef_sysreg.op2)', run_impdef_is_write: 'offsetof(struct kvm_run, arm_impdef_sysreg.is_write)',
  run_impdef_rt: 'offsetof(struct kvm_run, arm_impdef_sysreg.rt)', run_impdef_flags: 'offsetof(struct kvm_run, arm_impdef_sysreg.flags)',
  run_impdef_value: 'offsetof(struct kvm_run, arm_impdef_sysreg.value)',
  KVM_CAP_USER_MEMORY: 'KVM_CAP_USER_MEMORY', KVM_CAP_MP_STATE: 'KVM_CAP_MP_STATE', KVM_CAP_ONE_REG: 'KVM_CAP_ONE_REG',
  KVM_CAP_IMMEDIATE_EXIT: 'KVM_CAP_IMMEDIATE_EXIT', KVM_CAP_ARM_USER_IRQ: 'KVM_CAP_ARM_USER_IRQ',
  KVM_CAP_ARM_VM_IPA_SIZE: 'KVM_CAP_ARM_VM_IPA_SIZE', KVM_CAP_ARM_NISV_TO_USER: 'KVM_CAP_ARM_NISV_TO_USER',
  KVM_CAP_ARM_IMPDEF_SYSREG_EXITS: 'KVM_CAP_ARM_IMPDEF_SYSREG_EXITS',
  KVM_EXIT_UNKNOWN: 'KVM_EXIT_UNKNOWN', KVM_EXIT_DEBUG: 'KVM_EXIT_DEBUG', KVM_EXIT_MMIO: 'KVM_EXIT_MMIO', KVM_EXIT_SHUTDOWN: 'KVM_EXIT_SHUTDOWN',
  KVM_EXIT_FAIL_ENTRY: 'KVM_EXIT_FAIL_ENTRY', KVM_EXIT_INTR: 'KVM_EXIT_INTR', KVM_EXIT_INTERNAL_ERROR: 'KVM_EXIT_INTERNAL_ERROR',
  KVM_EXIT_SYSTEM_EVENT: 'KVM_EXIT_SYSTEM_EVENT', KVM_EXIT_ARM_NISV: 'KVM_EXIT_ARM_NISV', KVM_EXIT_ARM_IMPDEF_SYSREG: 'KVM_EXIT_ARM_IMPDEF_SYSREG',
  KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF: 'KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF',
  KVM_ARM_DEV_EL1_VTIMER: 'KVM_ARM_DEV_EL1_VTIMER', KVM_ARM_DEV_EL1_PTIMER: 'KVM_ARM_DEV_EL1_PTIMER',
  KVM_ARM_IRQ_TYPE_SHIFT: 'KVM_ARM_IRQ_TYPE_SHIFT', KVM_ARM_IRQ_VCPU_SHIFT: 'KVM_ARM_IRQ_VCPU_SHIFT', KVM_ARM_IRQ_TYPE_CPU: 'KVM_ARM_IRQ_TYPE_CPU',
  KVM_ARM_IRQ_CPU_IRQ: 'KVM_ARM_IRQ_CPU_IRQ', KVM_ARM_IRQ_CPU_FIQ: 'KVM_ARM_IRQ_CPU_FIQ',
  KVM_ARM_VCPU_POWER_OFF: 'KVM_ARM_VCPU_POWER_OFF', KVM_ARM_VCPU_PSCI_0_2: 'KVM_ARM_VCPU_PSCI_0_2', KVM_MP_STATE_RUNNABLE: 'KVM_MP_STATE_RUNNABLE',
  KVM_SYSTEM_EVENT_SHUTDOWN: 'KVM_SYSTEM_EVENT_SHUTDOWN', KVM_SYSTEM_EVENT_RESET: 'KVM_SYSTEM_EVENT_RESET',
  regs_x0: 'offsetof(struct kvm_regs, regs.regs)', regs_sp: 'offsetof(struct kvm_regs, regs.sp)', regs_pc: 'offsetof(struct kvm_regs, regs.pc)',
  regs_pstate: 'offsetof(struct kvm_regs, regs.pstate)', fp_regs_vregs: 'offsetof(struct kvm_regs, fp_regs.vregs)',
  id_x5: 'KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.regs[5])',
  id_pc: 'KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc)',
  id_v7: 'KVM_REG_ARM64 | KVM_REG_SIZE_U128 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(fp_regs.vregs[7])',
  id_mpidr: 'ARM64_SYS_REG(3, 0, 0, 0, 5)', id_pmcr0: 'ARM64_SYS_REG(3, 1, 15, 0, 0)',
};

let dir = '';
const got: Record<string, bigint> = {};

beforeAll(() => {
  if (!ready) return;
  dir = mkdtempSync(path.join(tmpdir(), 'm1prep-kvm-uapi-'));
  // The installed uapi kvm.h with the patch's uapi hunk applied, found before the sysroot's.
  mkdirSync(path.join(dir, 'include/linux'), { recursive: true });
  const patched = path.join(dir, 'include/linux/kvm.h');
  copyFileSync(path.join(sysroot, 'linux/kvm.h'), patched);
  const patchFile = readdirSync(patchDir).find((f) => f.endsWith('.patch'))!;
  const hunk = hunksFor(readFileSync(path.join(patchDir, patchFile), 'utf8'), 'include/uapi/linux/kvm.h');
  const p = spawnSync('patch', ['--quiet', patched], { input: hunk, encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`the patch's uapi hunk does not apply to ${sysroot}/linux/kvm.h: ${p.stdout}${p.stderr}`);
  const src = ['#include <stddef.h>', '#include <linux/kvm.h>',
    ...Object.entries(values).map(([k, e]) => `const unsigned long long v_${k} = (unsigned long long)(${e});`)].join('\n');
  writeFileSync(path.join(dir, 'v.c'), src);
  const r = spawnSync(cc!, ['-S', '-O0', '-I', path.join(dir, 'include'), '-o', path.join(dir, 'v.s'), path.join(dir, 'v.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const asm = readFileSync(path.join(dir, 'v.s'), 'utf8');
  // Non-zero constants are emitted as `.xword N`, zero ones as `.zero 8`.
  for (const m of asm.matchAll(/^v_(\w+):\n\s+(?:\.xword\s+(-?\d+)|\.zero\s+8)/gm)) got[m[1]!] = BigInt.asUintN(64, BigInt(m[2] ?? 0));
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const n = (k: string) => Number(got[k]);

describe.skipIf(!ready)('KVM uapi as the aarch64 compiler sees it (skipped without aarch64-linux-gnu-gcc, linux-libc-dev-arm64-cross or patch)', () => {
  it('compiled every value', () => {
    expect(Object.keys(got).sort()).toEqual(Object.keys(values).sort());
  });

  it('ioctl numbers and structure sizes', () => {
    for (const [k, v] of Object.entries(IOCTL)) expect([k, v]).toEqual([k, n(k)]);
    for (const [k, v] of Object.entries(SIZEOF)) expect([k, v]).toEqual([k, n(`sizeof_${k}`)]);
    expect(n('KVM_API_VERSION')).toBe(12);
  });

  it('capabilities, exit reasons and their constants (the two out-of-tree ones from the patch)', () => {
    for (const [k, v] of Object.entries(CAP)) if (k !== 'KVM_CAP_ARM_WRITABLE_IMP_ID_REGS') expect([k, v]).toEqual([k, n(k)]);
    for (const [k, v] of Object.entries(EXIT)) expect([k, v]).toEqual([k, n(k)]);
    expect(KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF).toBe(n('KVM_ARM_IMPDEF_SYSREG_INJECT_UNDEF'));
    expect([KVM_ARM_DEV_EL1_VTIMER, KVM_ARM_DEV_EL1_PTIMER]).toEqual([n('KVM_ARM_DEV_EL1_VTIMER'), n('KVM_ARM_DEV_EL1_PTIMER')]);
    expect([KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_VCPU_SHIFT, KVM_ARM_IRQ_TYPE_CPU, KVM_ARM_IRQ_CPU_IRQ, KVM_ARM_IRQ_CPU_FIQ])
      .toEqual([n('KVM_ARM_IRQ_TYPE_SHIFT'), n('KVM_ARM_IRQ_VCPU_SHIFT'), n('KVM_ARM_IRQ_TYPE_CPU'), n('KVM_ARM_IRQ_CPU_IRQ'), n('KVM_ARM_IRQ_CPU_FIQ')]);
    expect([KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_MP_STATE_RUNNABLE, KVM_SYSTEM_EVENT_SHUTDOWN, KVM_SYSTEM_EVENT_RESET])
      .toEqual([n('KVM_ARM_VCPU_POWER_OFF'), n('KVM_ARM_VCPU_PSCI_0_2'), n('KVM_MP_STATE_RUNNABLE'), n('KVM_SYSTEM_EVENT_SHUTDOWN'), n('KVM_SYSTEM_EVENT_RESET')]);
  });

  it('kvm_run offsets, including the patch\'s arm_impdef_sysreg exit', () => {
    for (const [k, v] of Object.entries(RUN)) expect([k, v]).toEqual([k, n(`run_${k}`)]);
  });

  it('guest debug: struct kvm_guest_debug and its control bits', () => {
    for (const [k, v] of Object.entries(GUEST_DEBUG)) expect([k, v]).toEqual([k, n(`gd_${k}`)]);
    expect([KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW])
      .toEqual([n('KVM_GUESTDBG_ENABLE'), n('KVM_GUESTDBG_SINGLESTEP'), n('KVM_GUESTDBG_USE_HW')]);
  });

  it('kvm_regs offsets and ONE_REG ids', () => {
    for (const [k, v] of Object.entries(KVM_REGS)) expect([k, v]).toEqual([k, n(k)]);
    expect(REG_ID.x(5)).toBe(got.id_x5);
    expect(REG_ID.pc).toBe(got.id_pc);
    expect(REG_ID.v(7)).toBe(got.id_v7);
    expect(sysregId(3, 0, 0, 0, 5)).toBe(got.id_mpidr);
    expect(sysregId(3, 1, 15, 0, 0)).toBe(got.id_pmcr0);
  });
});
