import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The machine has 2 cores; crash and soak tests are heavy, keep the pool small.
    maxWorkers: 2,
  },
});
