import { LIMIT_WAIT_KIND } from '../domain/limits.js';
import { LIMIT_BINDING_WORKFLOW_STATUSES, type StepStatus } from '../domain/statuses.js';
import type { Queryable } from './db.js';
import { SQL_ACTIVE_RUNS } from './sql-statuses.js';

/**
 * All SQL about named limits: the `limits` table, what runs hold or wait for
 * (`step_executions.limit_keys`, written by the runtime when it claims a run) and which
 * workflows name a limit (their current step definitions). Every function takes the pool or
 * a transaction.
 */

/** A limit's settings as stored; `rate_*` are both set or both null. */
export interface LimitRow {
  name: string;
  max_concurrent: number | null;
  rate_limit: number | null;
  rate_period_seconds: number | null;
  created_at: Date;
  updated_at: Date;
}

export interface LimitSettings {
  name: string;
  maxConcurrent: number | null;
  rate: { limit: number; periodSeconds: number } | null;
}

/** What one key of a limit holds now. `key` '' is the budget of steps that give no key. */
export interface LimitKeyUsage {
  name: string;
  key: string;
  in_use: number;
  waiting: number;
  /** The limit's totals over all its keys (every row of a limit repeats them). */
  total_in_use: number;
  total_waiting: number;
}

const COLUMNS = 'name, max_concurrent, rate_limit, rate_period_seconds, created_at, updated_at';

// Typed so that a status the domain does not know fails to compile; passed as parameters.
const IN_USE: StepStatus = 'running';
const WAITING: StepStatus = 'waiting';

/** Creates or replaces a limit; `created` tells which (xmax is 0 for a row just inserted). */
export async function upsertLimit(
  db: Queryable,
  settings: LimitSettings,
): Promise<{ row: LimitRow; created: boolean }> {
  const { rows } = await db.query<LimitRow & { created: boolean }>(
    `INSERT INTO limits AS l (name, max_concurrent, rate_limit, rate_period_seconds)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE
        SET max_concurrent = excluded.max_concurrent, rate_limit = excluded.rate_limit,
            rate_period_seconds = excluded.rate_period_seconds, updated_at = now()
     RETURNING ${COLUMNS}, (xmax = 0) AS created`,
    [
      settings.name,
      settings.maxConcurrent,
      settings.rate?.limit ?? null,
      settings.rate?.periodSeconds ?? null,
    ],
  );
  const [row] = rows;
  if (!row) throw new Error('INSERT ... RETURNING returned no row');
  const { created, ...limit } = row;
  return { row: limit, created };
}

/** One limit, or null. */
export async function findLimit(db: Queryable, name: string): Promise<LimitRow | null> {
  const { rows } = await db.query<LimitRow>(`SELECT ${COLUMNS} FROM limits WHERE name = $1`, [
    name,
  ]);
  return rows[0] ?? null;
}

/** Every limit, by name. */
export async function listLimits(db: Queryable): Promise<LimitRow[]> {
  const { rows } = await db.query<LimitRow>(`SELECT ${COLUMNS} FROM limits ORDER BY name`);
  return rows;
}

/**
 * The names among `names` that are limits, each locked FOR KEY SHARE until the transaction
 * ends: a workflow written in it may name them, and a concurrent DELETE waits for its
 * commit, then sees the workflow that names the limit.
 */
export async function lockExistingLimits(
  db: Queryable,
  names: readonly string[],
): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const { rows } = await db.query<{ name: string }>(
    'SELECT name FROM limits WHERE name = ANY($1::text[]) ORDER BY name FOR KEY SHARE',
    [names],
  );
  return new Set(rows.map((row) => row.name));
}

/** Locks a limit for its deletion (waiting for workflow writes that name it); false if none. */
export async function lockLimitForDelete(db: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM limits WHERE name = $1 FOR UPDATE', [name]);
  return (rowCount ?? 0) > 0;
}

export async function deleteLimit(db: Queryable, name: string): Promise<void> {
  await db.query('DELETE FROM limits WHERE name = $1', [name]);
}

/**
 * The workflows (not archived) whose current steps name each of `names`, ids sorted; a name
 * no such workflow names is absent from the map.
 */
export async function workflowsNamingLimits(
  db: Queryable,
  names: readonly string[],
): Promise<Map<string, string[]>> {
  if (names.length === 0) return new Map();
  const { rows } = await db.query<{ name: string; workflow_ids: string[] }>(
    `SELECT ref->>'name' AS name, array_agg(DISTINCT ws.workflow_id ORDER BY ws.workflow_id) AS workflow_ids
       FROM workflow_steps ws
       JOIN workflows w ON w.id = ws.workflow_id
      CROSS JOIN LATERAL jsonb_array_elements(ws.definition->'limits') AS ref
      WHERE coalesce(w.status, 'draft') = ANY($2::text[]) AND ref->>'name' = ANY($1::text[])
      GROUP BY ref->>'name'`,
    [names, LIMIT_BINDING_WORKFLOW_STATUSES],
  );
  return new Map(rows.map((row) => [row.name, row.workflow_ids]));
}

/**
 * What each key of the limits `names` holds now: runs `running` use a slot, runs `waiting`
 * with wait_kind 'limit' wait for one (a run is counted under every limit of its step). At
 * most `maxKeys` keys a limit, busiest first; keys with nothing in use or waiting are not
 * listed. Reads only the runs in the partial index step_executions_limit_keys_idx.
 */
export async function limitUsage(
  db: Queryable,
  names: readonly string[],
  maxKeys: number,
): Promise<LimitKeyUsage[]> {
  if (names.length === 0) return [];
  const { rows } = await db.query<LimitKeyUsage>(
    `WITH held AS (
       SELECT substr(k, 1, position(':' in k) - 1) AS name, substr(k, position(':' in k) + 1) AS key,
              s.status = $3 AS in_use,
              -- Waiting for a slot, or queued again until a token is due.
              (s.status = $4 AND s.wait_kind = $5)
                OR (s.status = 'queued' AND s.limit_wait->>'kind' = 'rate' AND s.wake_at > now())
                AS waiting
         FROM step_executions s CROSS JOIN LATERAL unnest(s.limit_keys) AS k
        WHERE s.limit_keys IS NOT NULL AND s.status IN ${SQL_ACTIVE_RUNS}
     ), per_key AS (
       SELECT name, key, count(*) FILTER (WHERE in_use)::int AS in_use,
              count(*) FILTER (WHERE waiting)::int AS waiting
         FROM held WHERE name = ANY($1::text[]) AND (in_use OR waiting)
        GROUP BY name, key
     ), ranked AS (
       SELECT name, key, in_use, waiting,
              (sum(in_use) OVER by_name)::int AS total_in_use,
              (sum(waiting) OVER by_name)::int AS total_waiting,
              row_number() OVER (PARTITION BY name ORDER BY in_use + waiting DESC, key) AS rank
         FROM per_key WINDOW by_name AS (PARTITION BY name)
     )
     SELECT name, key, in_use, waiting, total_in_use, total_waiting
       FROM ranked WHERE rank <= $2 ORDER BY name, rank`,
    [names, maxKeys, IN_USE, WAITING, LIMIT_WAIT_KIND],
  );
  return rows;
}
