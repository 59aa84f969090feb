import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The fault suite is slow and has its own config: `npm run test:faults`.
    exclude: [...configDefaults.exclude, 'tests/faults/**'],
    globalSetup: ['tests/helpers/global-setup.ts'],
    pool: 'forks',
    // Two cores: more parallel files only queue behind each other and stretch timeouts.
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
