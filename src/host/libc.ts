import koffi from 'koffi';
import { HostError } from '../errors.js';

// The few libc calls m1prep makes through koffi (the KVM backend, TAP links). ioctl is declared
// once per argument kind (an integer or a pointer) instead of as a variadic: on the Linux ABIs
// m1prep runs on (aarch64, x86_64) variadic integer/pointer arguments travel like fixed ones.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = (...args: any[]) => any;

export interface Libc {
  open: Fn;
  close: Fn;
  ioctlInt: Fn;
  ioctlPtr: Fn;
  read: Fn;
  write: Fn;
  poll: Fn;
  mmap: Fn;
  munmap: Fn;
  pthreadSelf: Fn;
  pthreadKill: Fn;
  sysconf: Fn;
  strerror: Fn;
}

export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const POLLIN = 1;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const SC_PAGESIZE = 30;
export const EINTR = 4;
export const EAGAIN = 11;

let cached: Libc | null = null;

export function libc(): Libc {
  if (cached) return cached;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libc.so.6');
  } catch (e) {
    throw new HostError(`cannot load libc.so.6: ${(e as Error).message.split('\n')[0]}`);
  }
  cached = {
    open: lib.func('int open(const char *path, int flags)'),
    close: lib.func('int close(int fd)'),
    ioctlInt: lib.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']),
    ioctlPtr: lib.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
    read: lib.func('long read(int fd, void *buf, size_t n)'),
    write: lib.func('long write(int fd, const void *buf, size_t n)'),
    poll: lib.func('int poll(void *fds, unsigned long n, int timeout)'),
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    munmap: lib.func('int munmap(void *addr, size_t len)'),
    pthreadSelf: lib.func('unsigned long pthread_self()'),
    pthreadKill: lib.func('int pthread_kill(unsigned long thread, int sig)'),
    sysconf: lib.func('long sysconf(int name)'),
    strerror: lib.func('const char *strerror(int errnum)'),
  };
  return cached;
}

/** "EINVAL (Invalid argument)"-style text for the last errno. */
export function lastError(): string {
  const e = koffi.errno();
  return `errno ${e} (${libc().strerror(e) as string})`;
}

/** mmap that returns null on MAP_FAILED. */
export function mapMemory(len: number, prot: number, flags: number, fd: number): unknown | null {
  const p = libc().mmap(null, len, prot, flags, fd, 0);
  if (p === null) return null;
  const addr = koffi.address(p);
  return addr === 0xffffffffffffffffn ? null : p;
}
