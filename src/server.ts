import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import {
  closeExpressionSandbox,
  configureExpressionSandbox,
} from './engine/expression-sandbox/index.js';
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
  const app = await buildApp(config);

  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an uncaught error');
    else app.log.info({ signal }, 'shutting down: readiness is 503, draining');
    app.lifecycle.shuttingDown = true;
    await app.close();
    await closeExpressionSandbox();
  });

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
