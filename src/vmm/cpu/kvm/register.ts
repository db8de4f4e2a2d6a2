import { registerBackend } from '../registry.js';
import { KvmBackend } from './backend.js';

// The KVM backend ignores the system-register filter: the kernel decides what exits (the
// IMPDEF space, with host-patch/kvm-impdef-sysreg-exits) and KVM itself runs the timers.
registerBackend('kvm', () => new KvmBackend());
