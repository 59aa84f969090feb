import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { loggerOptions } from '../logger.js';
import { ensureDatabase } from '../store/db.js';
import { migrate } from '../store/migrate.js';

/** `npm run migrate`: applies pending migrations and exits. */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino(loggerOptions(config));
  await ensureDatabase(config.DATABASE_URL);
  const applied = await migrate(config.DATABASE_URL, logger);
  logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
