import koffi from 'koffi';
import { HostError } from '../errors.js';

// A Linux TAP interface (linux/if_tun.h): /dev/net/tun bound to one interface with TUNSETIFF, in
// TAP mode without the packet-information header, so each read() returns one Ethernet frame and
// each write() sends one. Through koffi, like the rest of m1prep's host calls.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...args: any[]) => any;

/** _IOW('T', 202, int) */
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFNAMSIZ = 16;
/** sizeof(struct ifreq) on 64-bit Linux: the name, then a 24-byte union (ifr_flags first). */
const SIZEOF_IFREQ = 40;
const O_RDWR = 2, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
export const POLLIN = 1;

export interface TapCalls {
  open: Fn;
  ioctl: Fn;
  read: Fn;
  write: Fn;
  close: Fn;
  poll: Fn;
  strerror: Fn;
}

let calls: TapCalls | null = null;

export function tapCalls(): TapCalls {
  if (calls) return calls;
  const lib = koffi.load('libc.so.6');
  calls = {
    open: lib.func('int open(const char *path, int flags)'),
    ioctl: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
    read: lib.func('long read(int fd, void *buf, size_t n)'),
    write: lib.func('long write(int fd, const void *buf, size_t n)'),
    close: lib.func('int close(int fd)'),
    poll: lib.func('int poll(void *fds, unsigned long n, int timeout)'),
    strerror: lib.func('const char *strerror(int errnum)'),
  };
  return calls;
}

function errnoText(): string {
  const e = koffi.errno();
  return `${tapCalls().strerror(e) as string} (errno ${e})`;
}

/** Attach to the TAP interface `name` (made beforehand, e.g. `ip tuntap add dev tap0 mode tap
 *  user $USER`), or create one from the pattern "m1prep%d" (needs CAP_NET_ADMIN). */
export function openTap(name: string | undefined): { fd: number; name: string } {
  if (process.platform !== 'linux') throw new HostError('--net tap: TAP interfaces need a Linux host');
  const want = name ?? 'm1prep%d';
  if (Buffer.byteLength(want) >= IFNAMSIZ) throw new HostError(`--net tap,ifname=${want}: an interface name has at most ${IFNAMSIZ - 1} bytes`);
  const c = tapCalls();
  const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC) as number;
  if (fd < 0) throw new HostError(`--net tap: /dev/net/tun: ${errnoText()}`);
  const req = Buffer.alloc(SIZEOF_IFREQ);
  req.write(want, 0, 'utf8');
  req.writeUInt16LE(IFF_TAP | IFF_NO_PI, IFNAMSIZ);
  if ((c.ioctl(fd, TUNSETIFF, req) as number) < 0) {
    const why = errnoText();
    c.close(fd);
    const hint = name ? `; make it first with "ip tuntap add dev ${name} mode tap user $(id -un)"` : '; creating one needs CAP_NET_ADMIN (or name one made for you: tap,ifname=NAME)';
    throw new HostError(`--net tap${name ? `,ifname=${name}` : ''}: TUNSETIFF: ${why}${hint}`);
  }
  const end = req.indexOf(0);
  return { fd, name: req.toString('utf8', 0, end < 0 || end > IFNAMSIZ ? IFNAMSIZ : end) };
}
