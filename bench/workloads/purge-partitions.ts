import type pg from 'pg';

/**
 * The alternative to batched deletes, measured briefly on a table of its own in the purge
 * workload's database: step runs in a table partitioned by day of creation, where retention
 * would drop the partition of old days instead of deleting rows.
 *
 * - what Postgres answers to a primary key without the partition key (every unique and
 *   foreign key of the schema would have to carry it);
 * - how long dropping a partition of `rows` step runs takes;
 * - a lookup by id alone (what the engine does: it knows a run's id, not its day) against a
 *   lookup by id and day, which prunes to one partition.
 */

export interface PartitionFigures {
  primaryKeyRefusal: string;
  rows: number;
  partitions: number;
  insertSeconds: number;
  dropMs: number;
  lookupByIdMs: number;
  lookupByIdAndDayMs: number;
}

const DAYS = 30;
const RECENT_PER_DAY = 1000;
const LOOKUPS = 20_000;

async function refusal(db: pg.Client): Promise<string> {
  try {
    await db.query(
      `CREATE TABLE bench_part_probe (id BIGINT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL)
       PARTITION BY RANGE (created_at)`,
    );
    return 'accepted';
  } catch (error) {
    return (error as Error).message;
  } finally {
    await db.query('DROP TABLE IF EXISTS bench_part_probe');
  }
}

/** One partition of everything older than DAYS days, then one per day since. */
async function createPartitioned(db: pg.Client): Promise<number> {
  await db.query(
    `CREATE TABLE bench_part_runs (
       id BIGINT NOT NULL, execution_id VARCHAR(255) NOT NULL, step_id VARCHAR(255) NOT NULL,
       status VARCHAR(20) NOT NULL, output JSONB, created_at TIMESTAMPTZ NOT NULL,
       PRIMARY KEY (id, created_at)
     ) PARTITION BY RANGE (created_at)`,
  );
  const today = new Date();
  today.setUTCHours(0, 0, 0, 0);
  const day = (offset: number) =>
    new Date(today.getTime() + offset * 86_400_000).toISOString().slice(0, 10);
  await db.query(
    `CREATE TABLE bench_part_runs_old PARTITION OF bench_part_runs
       FOR VALUES FROM (MINVALUE) TO ('${day(-DAYS)}')`,
  );
  for (let offset = -DAYS; offset <= 0; offset += 1) {
    await db.query(
      `CREATE TABLE bench_part_runs_${offset + DAYS} PARTITION OF bench_part_runs
         FOR VALUES FROM ('${day(offset)}') TO ('${day(offset + 1)}')`,
    );
  }
  return DAYS + 2;
}

/**
 * Milliseconds per lookup of one statement that looks `keys` keys up one at a time, as the
 * engine does (a nested loop of index probes, joins that would read whole partitions turned
 * off): the server's cost, without a round trip per key. Run twice, the first warms the cache.
 */
async function timedLookups(
  db: pg.Client,
  text: string,
  values: unknown[],
  keys: number,
): Promise<number> {
  await db.query('BEGIN');
  try {
    await db.query('SET LOCAL enable_hashjoin = off');
    await db.query('SET LOCAL enable_mergejoin = off');
    await db.query('SET LOCAL enable_seqscan = off');
    await db.query(text, values);
    const started = performance.now();
    await db.query(text, values);
    return (performance.now() - started) / keys;
  } finally {
    await db.query('COMMIT');
  }
}

export async function measurePartitioning(
  db: pg.Client,
  rows: number,
  log: (message: string) => void,
): Promise<PartitionFigures> {
  const primaryKeyRefusal = await refusal(db);
  try {
    const partitions = await createPartitioned(db);
    const started = performance.now();
    await db.query(
      `INSERT INTO bench_part_runs
       SELECT g, 'ex_old' || lpad((g / 10)::text, 9, '0'), 's' || (g % 10), 'completed',
              '{"ok": true}', now() - interval '40 days' + g * interval '100 milliseconds'
         FROM generate_series(1, $1::int) AS g`,
      [rows],
    );
    const recent = DAYS * RECENT_PER_DAY;
    await db.query(
      `INSERT INTO bench_part_runs
       SELECT $1::int + g, 'ex_new' || g, 's1', 'completed', '{"ok": true}',
              now() - (g % $2::int) * interval '1 day' - interval '1 minute'
         FROM generate_series(1, $3::int) AS g`,
      [rows, DAYS, recent],
    );
    const insertSeconds = (performance.now() - started) / 1000;
    await db.query('ANALYZE bench_part_runs');
    const sample = Array.from(
      { length: LOOKUPS },
      () => rows + 1 + Math.floor(Math.random() * recent),
    );
    const { rows: keys } = await db.query<{ id: number; created_at: Date }>(
      'SELECT id, created_at FROM bench_part_runs WHERE id = ANY($1::bigint[])',
      [sample],
    );
    const ids = keys.map((key) => key.id);
    const days = keys.map((key) => key.created_at);
    const byId = `SELECT count(r.status) FROM unnest($1::bigint[]) AS k(id),
       LATERAL (SELECT status FROM bench_part_runs WHERE id = k.id) AS r`;
    const byIdAndDay = `SELECT count(r.status) FROM unnest($1::bigint[], $2::timestamptz[]) AS k(id, at),
       LATERAL (SELECT status FROM bench_part_runs WHERE id = k.id AND created_at = k.at) AS r`;
    const lookupByIdMs = await timedLookups(db, byId, [ids], ids.length);
    const lookupByIdAndDayMs = await timedLookups(db, byIdAndDay, [ids, days], ids.length);
    const dropStarted = performance.now();
    await db.query('DROP TABLE bench_part_runs_old');
    const dropMs = performance.now() - dropStarted;
    log(
      `  partitioned alternative: dropping ${rows} rows took ${dropMs.toFixed(1)} ms; a lookup by id ${(lookupByIdMs * 1000).toFixed(1)} µs of server time over ${partitions} partitions, by id and day ${(lookupByIdAndDayMs * 1000).toFixed(1)} µs`,
    );
    return {
      primaryKeyRefusal,
      rows,
      partitions,
      insertSeconds,
      dropMs,
      lookupByIdMs,
      lookupByIdAndDayMs,
    };
  } finally {
    await db.query('DROP TABLE IF EXISTS bench_part_runs');
  }
}
