import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { isRole, ROLES } from '../domain/roles.js';
import { loggerOptions } from '../logger.js';
import { ApiKeyService } from '../security/api-key-service.js';
import { ApiKeyStore } from '../store/api-key-store.js';
import { createPool, ensureDatabase } from '../store/db.js';
import { migrate } from '../store/migrate.js';

/**
 * `npm run api-key -- create --role admin --name ops [--expires-at 2027-01-01T00:00:00Z]`
 * prints a new key once (the first admin key has to come from somewhere);
 * `npm run api-key -- list` and `npm run api-key -- revoke <id>` manage them.
 */
const USAGE = `Usage:
  npm run api-key -- create --role <${ROLES.join('|')}> --name <name> [--expires-at <ISO time>]
  npm run api-key -- list
  npm run api-key -- revoke <id>`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      name: { type: 'string' },
      'expires-at': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) throw new UsageError(USAGE);

  const config = loadConfig();
  const logger = pino(loggerOptions(config));
  await ensureDatabase(config.DATABASE_URL);
  await migrate(config.DATABASE_URL, logger);
  const pool = createPool(config.DATABASE_URL, { max: 2 });
  const keys = new ApiKeyService(() => new ApiKeyStore(pool));
  try {
    switch (command) {
      case 'create': {
        const { role, name } = values;
        if (!isRole(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
        const trimmed = name?.trim() ?? '';
        if (trimmed.length === 0 || trimmed.length > 100 || /\p{Cc}/u.test(trimmed)) {
          throw new UsageError('--name must be 1 to 100 printable characters');
        }
        const expiresText = values['expires-at'];
        const expiresAt = expiresText === undefined ? null : new Date(expiresText);
        if (expiresAt !== null && Number.isNaN(expiresAt.getTime())) {
          throw new UsageError('--expires-at must be an ISO 8601 time');
        }
        const created = await keys.create({
          name: trimmed,
          role,
          expiresAt,
          createdBy: 'cli',
        });
        process.stderr.write(
          `Created API key ${created.id} (${created.role}, "${created.name}"${created.expires_at ? `, expires ${created.expires_at}` : ''}).\nIt is shown only now; send it as X-API-Key (or Authorization: Bearer):\n`,
        );
        process.stdout.write(`${created.key}\n`);
        break;
      }
      case 'list': {
        let cursor: string | undefined;
        do {
          const page = await keys.list({ limit: 100, cursor });
          for (const key of page.items) {
            process.stdout.write(
              `${key.id}\t${key.role}\t${key.status}\t${key.created_at}\t${key.name}\n`,
            );
          }
          cursor = page.next_cursor ?? undefined;
        } while (cursor !== undefined);
        break;
      }
      case 'revoke': {
        const [id] = rest;
        if (id === undefined) throw new UsageError('revoke needs the key id (ak_...)');
        if (!(await keys.revoke(id))) throw new UsageError(`no API key has the id ${id}`);
        process.stderr.write(`Revoked ${id}\n`);
        break;
      }
      default:
        throw new UsageError(`unknown command "${command}"\n${USAGE}`);
    }
  } finally {
    await pool.end();
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError || error instanceof ConfigError) {
    console.error(error.message);
  } else if (error instanceof TypeError && 'code' in error) {
    // parseArgs: unknown option or missing value.
    console.error(`${error.message}\n${USAGE}`);
  } else {
    console.error(error);
  }
  process.exit(1);
});
