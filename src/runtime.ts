import type { FastifyInstance } from 'fastify';
import { redactUrl } from './plugins/infrastructure.js';
import { ensureDatabase } from './store/db.js';
import { migrate } from './store/migrate.js';

const MAX_BACKOFF_MS = 10_000;

/**
 * Brings the database up to date and then starts the engine. While Postgres is unreachable it
 * keeps trying with backoff, telling the operator what is missing, instead of crashing: the
 * HTTP server is already listening and readiness says 503 until this finishes.
 */
export async function startRuntime(app: FastifyInstance): Promise<void> {
  const { config } = app;
  let attempt = 0;
  while (!app.lifecycle.shuttingDown) {
    try {
      await ensureDatabase(config.DATABASE_URL);
      if (config.MIGRATE_ON_START) {
        const applied = await migrate(config.DATABASE_URL, app.log);
        if (applied.length > 0) app.log.info({ applied }, 'migrations applied');
      }
      app.lifecycle.databaseReady = true;
      break;
    } catch (error) {
      attempt += 1;
      const delay = Math.min(500 * 2 ** Math.min(attempt, 5), MAX_BACKOFF_MS);
      app.log.error(
        { err: error, databaseUrl: redactUrl(config.DATABASE_URL), retryInMs: delay },
        'Postgres is not usable yet; retrying. Locally: pg_ctlcluster <version> main start, or set DATABASE_URL',
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
  if (app.lifecycle.databaseReady && app.engine) await app.engine.start();
}
