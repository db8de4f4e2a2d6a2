import { registerCheck } from '../host/checks.js';
import { disassemble } from './disasm.js';
import { shippedProfiles } from './profile.js';

// `m1prep doctor`: the disassembler of patch reports (Capstone, WebAssembly) and the shipped profiles.

registerCheck(async () => {
  try {
    const [line] = await disassemble(Uint8Array.of(0x7f, 0x23, 0x03, 0xd5), 0n);
    const ok = line === 'pacibsp';
    return { name: 'patch-report disassembler', status: ok ? 'ok' : 'warn', detail: ok ? 'Capstone (WebAssembly) decodes A64' : `Capstone decoded PACIBSP as "${line}"`, needFor: 'disassembly in patch reports' };
  } catch (e) {
    return { name: 'patch-report disassembler', status: 'missing', detail: `Capstone did not load: ${(e as Error).message}`, needFor: 'm1prep patch reports' };
  }
});

registerCheck(() => {
  const p = shippedProfiles();
  return { name: 'patch profiles', status: p.length ? 'ok' : 'missing', detail: p.length ? `shipped: ${p.join(', ')}` : 'no profiles/ next to the package', needFor: 'm1prep patch --profile VERSION' };
});
