import { HostError } from '../errors.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDWR, lastError, libc } from './libc.js';

// A Linux TAP interface (linux/if_tun.h): /dev/net/tun bound to one interface with TUNSETIFF, in
// TAP mode without the packet-information header, so each read() returns one Ethernet frame and
// each write() sends one. Through koffi, like the rest of m1prep's host calls.

/** _IOW('T', 202, int) */
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFNAMSIZ = 16;
/** sizeof(struct ifreq) on 64-bit Linux: the name, then a 24-byte union (ifr_flags first). */
const SIZEOF_IFREQ = 40;

/** Attach to the TAP interface `name` (made beforehand, e.g. `ip tuntap add dev tap0 mode tap
 *  user $USER`), or create one from the pattern "m1prep%d" (needs CAP_NET_ADMIN). */
export function openTap(name: string | undefined): { fd: number; name: string } {
  if (process.platform !== 'linux') throw new HostError('--net tap: TAP interfaces need a Linux host');
  const want = name ?? 'm1prep%d';
  if (Buffer.byteLength(want) >= IFNAMSIZ) throw new HostError(`--net tap,ifname=${want}: an interface name has at most ${IFNAMSIZ - 1} bytes`);
  const c = libc();
  const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC) as number;
  if (fd < 0) throw new HostError(`--net tap: /dev/net/tun: ${lastError()}`);
  const req = Buffer.alloc(SIZEOF_IFREQ);
  req.write(want, 0, 'utf8');
  req.writeUInt16LE(IFF_TAP | IFF_NO_PI, IFNAMSIZ);
  if ((c.ioctlPtr(fd, TUNSETIFF, req) as number) < 0) {
    const why = lastError();
    c.close(fd);
    const hint = name ? `; make it first with "ip tuntap add dev ${name} mode tap user $(id -un)"` : '; creating one needs CAP_NET_ADMIN (or name one made for you: tap,ifname=NAME)';
    throw new HostError(`--net tap${name ? `,ifname=${name}` : ''}: TUNSETIFF: ${why}${hint}`);
  }
  const end = req.indexOf(0);
  return { fd, name: req.toString('utf8', 0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end) };
}
