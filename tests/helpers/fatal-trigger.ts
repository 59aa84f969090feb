/**
 * Preloaded (`--import`) into a service process by tests/integration/fatal-exit.test.ts, so
 * the service itself carries no test hook: SIGUSR2 raises an uncaught exception, or with
 * FATAL_TRIGGER=rejection an unhandled rejection, as a bug deep in a dependency would.
 */
process.on('SIGUSR2', () => {
  if (process.env.FATAL_TRIGGER === 'rejection') {
    // `void` only silences the linter: the rejection still has no handler.
    void Promise.reject(new Error('test: an unhandled rejection'));
  } else {
    setImmediate(() => {
      throw new Error('test: an uncaught exception');
    });
  }
});
