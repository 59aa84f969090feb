import pg from 'pg';

/** SQLSTATE codes the stores react to, by name. */
export const SqlState = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  INVALID_DATABASE: '3D000',
  DUPLICATE_DATABASE: '42P04',
  INVALID_TEXT_REPRESENTATION: '22P02',
  LOCK_NOT_AVAILABLE: '55P03',
  DEADLOCK_DETECTED: '40P01',
} as const;

// BIGINT and NUMERIC arrive as strings by default; our counters and durations fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (value) => Number.parseFloat(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that runs a query: the pool or a client inside a transaction. */
export type Queryable = Pick<pg.Pool, 'query'>;

export function createPool(databaseUrl: string, options: { max?: number } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 20,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    application_name: 'workflow-service',
  });
  // An idle client losing its connection (Postgres restart) must not crash the process;
  // the pool drops it and the next query reconnects.
  pool.on('error', () => {});
  // pg-pool listens for errors only on idle clients: a checked-out client whose connection
  // drops between two queries (in a transaction, say) would emit an unhandled 'error' and
  // crash the process. Its next query fails instead, and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

/** Runs fn in a transaction on one client; commits, or rolls back on any error. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return withTransactionThen(pool, fn, async (_client, result) => result);
}

/**
 * withTransaction, then `then` on the same connection once committed: a read that answers
 * the request must not queue for another connection, or under load a committed change would
 * be answered with a pool timeout (503) and the client would repeat it.
 */
export async function withTransactionThen<T, R>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  then: (client: pg.PoolClient, result: T) => Promise<R>,
): Promise<R> {
  const client = await pool.connect();
  try {
    let result: T;
    try {
      await client.query('BEGIN');
      result = await fn(client);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
    return await then(client, result);
  } finally {
    client.release();
  }
}

/** Within the caller's transaction, a lock not granted within `ms` fails the statement
 * (LOCK_NOT_AVAILABLE) instead of waiting: background work that must never queue behind the
 * engine. */
export async function setLockTimeout(tx: Queryable, ms: number): Promise<void> {
  await tx.query("SELECT set_config('lock_timeout', $1, true)", [`${ms}ms`]);
}

export function isPgError(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/**
 * Creates the database named in the URL when it does not exist, so that a fresh machine
 * with a bare Postgres needs no manual step. Connects to the `postgres` maintenance database.
 */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return;
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await probe.connect();
    return;
  } catch (error) {
    if (!isPgError(error, SqlState.INVALID_DATABASE)) throw error;
  } finally {
    await probe.end().catch(() => {});
  }
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } catch (error) {
    // Another process created it first: that is what we wanted.
    if (!isPgError(error, SqlState.DUPLICATE_DATABASE)) throw error;
  } finally {
    await admin.end().catch(() => {});
  }
}
