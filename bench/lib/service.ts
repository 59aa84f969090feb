import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { startRuntime } from '../../src/runtime.js';
import type { BenchDatabase } from './context.js';

/**
 * The environment every service under benchmark runs with: the service's defaults (worker
 * concurrency 20, pool of 20, stats cache, relay interval...) except what a benchmark must
 * change. Authentication is off (the API figures measure the service, not key hashing) and the
 * rate limits are far above what the benchmark sends; logs at error keep the table readable.
 */
export function serviceEnvironment(
  database: BenchDatabase,
  redisUrl: string,
  prefix: string,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'development',
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    LOG_LEVEL: 'error',
    SERVICE_HOST: '127.0.0.1',
    SERVICE_PORT: '0',
    AUTH_MODE: 'none',
    RATE_LIMIT_MAX: '1000000000',
    RATE_LIMIT_IP_MAX: '1000000000',
    MAX_STEPS: '300',
    ...overrides,
  };
}

export interface InProcessService {
  app: FastifyInstance;
  /** Base URL when listening (http://127.0.0.1:port), else ''. */
  url: string;
  close(): Promise<void>;
}

/**
 * Builds the service in this process, lets `beforeReady` add routes (the bench's bare routes),
 * starts its runtime (migrations are already applied; the engine starts if the role has it)
 * and, with `listen`, serves on 127.0.0.1 at a free port.
 */
export async function startInProcessService(
  env: Record<string, string>,
  options: { listen?: boolean; beforeReady?: (app: FastifyInstance) => void } = {},
): Promise<InProcessService> {
  const config = loadConfig(env);
  const app = await buildApp(config);
  options.beforeReady?.(app);
  let url = '';
  if (options.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address() as AddressInfo;
    url = `http://127.0.0.1:${address.port}`;
  } else {
    await app.ready();
  }
  await startRuntime(app);
  return {
    app,
    url,
    async close() {
      app.lifecycle.shuttingDown = true;
      await app.close();
    },
  };
}
