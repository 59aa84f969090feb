import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): crashes, restarts and overload with real service
 * processes. Slow by nature, so it is kept out of `npm test`. Files run one at a time: each
 * scenario loads the two cores on its own, and they share the figures file.
 */
export default defineConfig({
  test: {
    include: ['tests/faults/**/*.test.ts'],
    globalSetup: ['tests/helpers/global-setup.ts', 'tests/faults/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    reporters: ['default', ['json', { outputFile: 'test-results/faults.json' }]],
  },
});
