// Shared timing and memory helpers for bench/*.bench.ts.
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** Best-of-n wall time in seconds of fn (after one warm-up run). */
export async function timeBest(fn: () => unknown | Promise<unknown>, n = 3): Promise<number> {
  await fn();
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return best;
}

export function mibPerS(bytes: number, seconds: number): number {
  return bytes / 2 ** 20 / seconds;
}
