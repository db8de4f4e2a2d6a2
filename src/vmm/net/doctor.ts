import { accessSync, constants, existsSync } from 'node:fs';
import { registerCheck } from '../../host/checks.js';

// m1prep doctor: can `--net tap` work here? /dev/net/tun must exist and be readable and writable;
// creating an interface needs CAP_NET_ADMIN, attaching to one made for this user does not.
registerCheck(() => {
  const need = 'm1prep boot --net tap';
  if (process.platform !== 'linux' || !existsSync('/dev/net/tun')) {
    return { name: 'tap (/dev/net/tun)', status: 'warn', detail: 'absent: --net tap is unavailable (socket and null links still work)', needFor: need };
  }
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    return { name: 'tap (/dev/net/tun)', status: 'warn', detail: 'present, not readable and writable by this user', needFor: need };
  }
  const root = process.getuid?.() === 0;
  return {
    name: 'tap (/dev/net/tun)',
    status: 'ok',
    detail: root ? 'usable; as root --net tap can also create interfaces' : 'usable for interfaces made for this user (ip tuntap add dev tap0 mode tap user $USER)',
  };
});
