import { registerCheck } from '../host/checks.js';
import { tryLoadUnicorn, unicornLoadError, versionOk } from './cpu/unicorn/ffi.js';

// m1prep doctor: can this host run the software CPU backend?
registerCheck(() => {
  const lib = tryLoadUnicorn();
  if (!lib) {
    return { name: 'unicorn', status: 'missing', detail: `libunicorn not loadable: ${unicornLoadError()} (scripts/setup.sh installs libunicorn2t64)`, needFor: 'm1prep boot --backend software' };
  }
  const v = lib.version;
  const ver = `${v.major}.${v.minor}.${v.patch}`;
  return versionOk(v)
    ? { name: 'unicorn', status: 'ok', detail: `${lib.path} ${ver} (>= 2.1: software CPU backend available)` }
    : { name: 'unicorn', status: 'missing', detail: `${lib.path} ${ver} is older than 2.1`, needFor: 'm1prep boot --backend software' };
});
