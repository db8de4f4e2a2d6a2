import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 1_200_000,
    // Slow end-to-end suites (Linux build, boots) live in their own files and run in parallel
    // with the fast ones on CI's two cores.
    maxWorkers: 2,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
