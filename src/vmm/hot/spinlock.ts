// A spin lock in one word of shared memory, for state that the main thread and vCPU threads both
// change (the UART's TX ring, a vCPU's FIQ line). Critical sections are a few loads and stores
// or one ioctl, so spinning beats sleeping on a futex.

export function lock(words: Int32Array, index: number): void {
  while (Atomics.compareExchange(words, index, 0, 1) !== 0) {
    // Another thread holds it for a few instructions (or one KVM_IRQ_LINE): spin.
  }
}

export function unlock(words: Int32Array, index: number): void {
  Atomics.store(words, index, 0);
}

export function withLock<T>(words: Int32Array, index: number, fn: () => T): T {
  lock(words, index);
  try {
    return fn();
  } finally {
    unlock(words, index);
  }
}
