import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import {
  closeExpressionSandbox,
  configureExpressionSandbox,
} from './engine/expression-sandbox/index.js';
import { startTracing, stopTracing } from './monitoring/tracing.js';
import { startRuntime } from './runtime.js';

/** Boot: read config, build, listen, then migrate and start workers; drain on SIGTERM. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }

  configureExpressionSandbox({
    memoryMb: config.EXPRESSION_MEMORY_MB,
    maxOutputBytes: config.EXPRESSION_MAX_OUTPUT_BYTES,
  });
  // Before the app, so every span has its provider; off unless OTEL_* ask (README "Tracing").
  startTracing('workflow-service');
  const app = await buildApp(config);

  // An uncaught exception or unhandled rejection leaves the process in an unknown state: it
  // drains for at most the grace period, then exits with code 1 (close-with-grace), so its
  // supervisor starts a fresh one. A second error, or a drain past the grace, exits at once.
  closeWithGrace(
    {
      delay: config.SHUTDOWN_GRACE_MS,
      onTimeout: (delayMs) => app.log.fatal({ delayMs }, 'drain took too long: exiting'),
      onSecondError: (err) => app.log.fatal({ err }, 'second uncaught error: exiting'),
    },
    async ({ signal, err }) => {
      if (err) app.log.fatal({ err }, 'uncaught error: draining, then exiting with code 1');
      else app.log.info({ signal }, 'shutting down: readiness is 503, draining');
      app.lifecycle.shuttingDown = true;
      await app.close();
      await closeExpressionSandbox();
      // Last: the spans of the attempts drained above are sent before the process exits.
      await stopTracing();
    },
  );

  await app.listen({ port: config.SERVICE_PORT, host: config.SERVICE_HOST });
  app.log.info(
    { role: config.SERVICE_ROLE, port: config.SERVICE_PORT },
    'workflow service listening',
  );
  startRuntime(app).catch((error: unknown) => {
    app.log.fatal({ err: error }, 'runtime failed to start');
    process.exit(1);
  });
}

void main();
