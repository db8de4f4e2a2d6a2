import { HostError } from '../../errors.js';
import type { CpuBackend, SysregFilter } from './backend.js';

// CPU backends by name. The software backend registers itself (cpu/unicorn/register.ts); a KVM
// backend will register under "kvm" the same way, and `m1prep boot --backend` picks one.

export interface BackendOptions {
  sysregFilter: SysregFilter;
  sliceInstructions?: number;
}

export type BackendFactory = (opts: BackendOptions) => CpuBackend;

const factories = new Map<string, BackendFactory>();

export function registerBackend(name: string, factory: BackendFactory): void {
  factories.set(name, factory);
}

export function backendNames(): string[] {
  return [...factories.keys()];
}

/** Throw the HostError createBackend would, before any work is done. */
export function assertBackend(name: string): void {
  // Constructing a backend only checks the host (libraries, /dev/kvm); no VM or engine exists yet.
  createBackend(name, { sysregFilter: () => false }).destroy();
}

export function createBackend(name: string, opts: BackendOptions): CpuBackend {
  const f = factories.get(name);
  if (!f) {
    if (name === 'kvm') throw new HostError('the KVM backend is not available in this build: use --backend software (Unicorn)');
    throw new HostError(`no CPU backend named "${name}" (available: ${backendNames().join(', ')})`);
  }
  return f(opts);
}
