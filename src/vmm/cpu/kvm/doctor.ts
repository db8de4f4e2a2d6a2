import { registerCheck, type CheckResult } from '../../../host/checks.js';
import { probeKvm } from './probe.js';

// m1prep doctor: can this host run `m1prep boot --backend kvm`? /dev/kvm, the host architecture
// and page size, the KVM capabilities the backend uses, and host-patch/kvm-impdef-sysreg-exits.
registerCheck((): CheckResult[] => {
  const p = probeKvm();
  const need = 'm1prep boot --backend kvm';
  const dev = p.devKvm === 'ok' ? 'present, read/write' : p.devKvm === 'no-access' ? 'present, not accessible to this user' : 'absent';
  const host: CheckResult = {
    name: 'kvm host',
    status: p.arch === 'aarch64' && p.devKvm === 'ok' ? 'ok' : 'warn',
    detail: `${p.arch}, ${p.pageSize / 1024} KiB pages, /dev/kvm ${dev}${p.arch === 'aarch64' ? '' : ' (KVM for an M1 guest needs an aarch64 Linux host; the software backend runs here)'}`,
  };
  if (!p.caps) return [host, { name: 'kvm backend', status: 'warn', detail: p.problem ?? 'unavailable', needFor: need }];
  const c = p.caps;
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const caps: CheckResult = {
    name: 'kvm capabilities',
    status: c.userIrq && c.immediateExit && c.oneReg && c.mpState ? 'ok' : 'missing',
    detail: `USER_IRQ ${yes(c.userIrq)}, NISV_TO_USER ${yes(c.nisvToUser)}, WRITABLE_IMP_ID_REGS ${yes(c.writableImpIdRegs)}, IPA size ${c.ipaSize || 40} bits, IMMEDIATE_EXIT ${yes(c.immediateExit)}, guest debug ${c.guestDebug ? `yes (${c.hwBreakpoints} hardware breakpoints)` : 'no'}`,
    needFor: need,
  };
  const patch: CheckResult = c.impdefSysregExits
    ? { name: 'kvm impdef-sysreg patch', status: 'ok', detail: 'KVM_CAP_ARM_IMPDEF_SYSREG_EXITS present: Apple IMPDEF system registers reach the VMM' }
    : { name: 'kvm impdef-sysreg patch', status: 'missing', detail: p.problem ?? 'absent', needFor: need };
  return [host, caps, patch];
});
