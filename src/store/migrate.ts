import path from 'node:path';
import { runner } from 'node-pg-migrate';
import { projectRoot } from '../project.js';

// Fixed key for the migration advisory lock, so concurrent starts wait for each other.
const MIGRATION_LOCK_KEY = 7_210_492_601;

/** Applies pending migrations; safe to call from many processes at once. */
export async function migrate(
  databaseUrl: string,
  logger: { debug(details: object, message: string): void },
): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: path.join(projectRoot, 'migrations'),
    direction: 'up',
    migrationsTable: 'pgmigrations',
    singleTransaction: true,
    lockValue: MIGRATION_LOCK_KEY,
    advisoryLockMode: 'wait',
    checkOrder: true,
    log: (message) => logger.debug({ migration: message }, 'migration'),
  });
  return applied.map((migration) => migration.name);
}
