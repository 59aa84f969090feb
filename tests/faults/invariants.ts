import pg from 'pg';
import { COUNTER_COLUMNS, UNFOLDED_DELTAS } from '../../src/store/workflow-counter-store.js';

/**
 * What must hold after every fault scenario, read from Postgres (the source of truth):
 *
 * 1. Every accepted execution (answered 2xx) exists and reached a terminal state (completed:
 *    the scenarios' steps cannot fail), and so did every execution that was committed without
 *    its answer reaching the client. None is half-written: each has one run per step of its
 *    pinned definition.
 * 2. No step completed twice: each (execution, step, iteration, item) has one row, each run
 *    moved to `completed` once (an audit trigger records every transition), and each
 *    execution ended once.
 * 3. Side effects (calls seen by the side-effect server, keyed by execution and step) happened
 *    at least once per completed http run and at most once per claim of it: at most once more
 *    per interrupted attempt. No call was made for a run or execution that does not exist.
 * 4. The workflows' counters (execution_count, success_count, failure_count) and
 *    `GET /workflows/{id}/stats` agree with the rows.
 *
 * The audit trigger is test instrumentation installed in the scenario's own database; it
 * observes the engine's writes and changes none of them.
 */

const TERMINAL = ['completed', 'failed', 'cancelled', 'timed_out'];

const AUDIT_SQL = `
CREATE TABLE IF NOT EXISTS fault_audit (
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL,
  run_id BIGINT,
  execution_id TEXT NOT NULL,
  attempt INTEGER,
  at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS fault_audit_run_idx ON fault_audit (run_id, kind);

CREATE OR REPLACE FUNCTION fault_audit_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.lease_id IS NOT NULL AND NEW.lease_id IS DISTINCT FROM OLD.lease_id THEN
    INSERT INTO fault_audit (kind, run_id, execution_id, attempt)
    VALUES ('claim', NEW.id, NEW.execution_id, NEW.attempt);
  END IF;
  IF NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed' THEN
    INSERT INTO fault_audit (kind, run_id, execution_id, attempt)
    VALUES ('complete', NEW.id, NEW.execution_id, NEW.attempt);
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fault_audit_step ON step_executions;
CREATE TRIGGER fault_audit_step AFTER UPDATE ON step_executions
  FOR EACH ROW EXECUTE FUNCTION fault_audit_step();

CREATE OR REPLACE FUNCTION fault_audit_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IN ('completed', 'failed', 'cancelled', 'timed_out')
     AND OLD.status NOT IN ('completed', 'failed', 'cancelled', 'timed_out') THEN
    INSERT INTO fault_audit (kind, execution_id) VALUES ('finish', NEW.id);
  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fault_audit_execution ON workflow_executions;
CREATE TRIGGER fault_audit_execution AFTER UPDATE ON workflow_executions
  FOR EACH ROW EXECUTE FUNCTION fault_audit_execution();
`;

/** Installs the audit triggers; the schema (migrations) must exist. */
export async function installAudit(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(AUDIT_SQL);
  } finally {
    await client.end();
  }
}

/** Counts terminal executions among `ids` (all of the database's when ids is omitted). */
export async function countTerminal(
  databaseUrl: string,
  ids?: readonly string[],
): Promise<{ terminal: number; total: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ terminal: number; total: number }>(
      `SELECT count(*) FILTER (WHERE status = ANY($2::text[]))::int AS terminal, count(*)::int AS total
         FROM workflow_executions WHERE ($1::text[] IS NULL OR id = ANY($1::text[]))`,
      [ids ?? null, TERMINAL],
    );
    return rows[0] ?? { terminal: 0, total: 0 };
  } finally {
    await client.end();
  }
}

/** Waits (bounded) until every execution (of `ids`, or all) is terminal. */
export async function waitAllTerminal(
  databaseUrl: string,
  ids: readonly string[] | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let counts: { terminal: number; total: number } | undefined;
    try {
      counts = await countTerminal(databaseUrl, ids);
    } catch {
      // Postgres restarting: ask again.
    }
    if (counts && counts.terminal === counts.total && (!ids || counts.total === ids.length)) {
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `executions did not all end within ${timeoutMs} ms: ${JSON.stringify(counts)} of ${ids?.length ?? 'all'}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export interface SideEffects {
  /** Calls seen per path. */
  calls: ReadonlyMap<string, number>;
  /** The path an http run calls, or null for steps without side effects. */
  pathOf(run: {
    execution_id: string;
    step_id: string;
    item_index: number;
    item_count: number | null;
  }): string | null;
}

export interface InvariantOptions {
  databaseUrl: string;
  /** Executions the API acknowledged with 2xx. */
  accepted: Iterable<string>;
  sideEffects?: SideEffects;
  /** Base URL of a live API process, to compare `GET /workflows/{id}/stats` with the rows. */
  apiUrl?: string;
}

export interface InvariantReport {
  /** Executions in the database. */
  executions: number;
  accepted: number;
  /** Committed, but the client never got the answer (the API died or failed after commit). */
  unacknowledged: number;
  /** Accepted executions missing, unfinished or not completed. */
  lost: number;
  /** Runs that moved to completed more than once, plus executions that ended twice. */
  duplicatedCompletions: number;
  /** Step runs in the database. */
  runs: number;
  /** Claims beyond the first, over all runs: attempts that ran again after an interruption. */
  rerunAttempts: number;
  /** Side-effect calls beyond one per completed run. */
  repeatedSideEffects: number;
  sideEffectCalls: number;
  /** Everything that does not hold; empty when all is well. */
  problems: string[];
}

interface ExecutionFacts {
  id: string;
  workflow_id: string;
  status: string;
  expected_runs: number;
  actual_runs: number;
}

interface RunFacts {
  id: number;
  execution_id: string;
  step_id: string;
  item_index: number;
  /** Set on a for_each step's own run: it aggregates its items and calls nothing itself. */
  item_count: number | null;
  status: string;
  output: unknown;
  claims: number;
  completions: number;
}

const MAX_LISTED = 25;

/** Reads Postgres (and the stats endpoint) and reports every violated invariant. */
export async function checkInvariants(options: InvariantOptions): Promise<InvariantReport> {
  const problems: string[] = [];
  const problem = (message: string) => {
    if (problems.length < MAX_LISTED) problems.push(message);
    else if (problems.length === MAX_LISTED) problems.push('… more problems not listed');
  };
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  try {
    const executions = (
      await client.query<ExecutionFacts>(
        `SELECT e.id, e.workflow_id, e.status,
                jsonb_array_length(v.definition->'steps')::int AS expected_runs,
                (SELECT count(*)::int FROM step_executions s
                  WHERE s.execution_id = e.id AND s.iteration = 0 AND s.item_index = -1) AS actual_runs
           FROM workflow_executions e
           LEFT JOIN workflow_versions v ON v.workflow_id = e.workflow_id AND v.version = e.workflow_version`,
      )
    ).rows;
    const byId = new Map(executions.map((execution) => [execution.id, execution]));
    const accepted = new Set(options.accepted);

    // 1. Accepted executions exist and completed; nothing committed is half-written or stuck.
    let lost = 0;
    for (const id of accepted) {
      const execution = byId.get(id);
      if (!execution) {
        lost += 1;
        problem(`accepted execution ${id} is not in Postgres`);
      } else if (execution.status !== 'completed') {
        lost += 1;
        problem(`accepted execution ${id} is ${execution.status}, not completed`);
      }
    }
    let unacknowledged = 0;
    for (const execution of executions) {
      if (!accepted.has(execution.id)) {
        unacknowledged += 1;
        if (execution.status !== 'completed') {
          problem(`unacknowledged execution ${execution.id} is ${execution.status}`);
        }
      }
      if (execution.expected_runs !== execution.actual_runs) {
        problem(
          `execution ${execution.id} is half-written: ${execution.actual_runs} step runs for ${execution.expected_runs} steps`,
        );
      }
    }

    // 2. One row per run; one completion per run; one end per execution.
    const duplicateRows = await client.query<{ key: string; count: number }>(
      `SELECT concat_ws('/', execution_id, step_id, iteration, item_index) AS key, count(*)::int AS count
         FROM step_executions GROUP BY execution_id, step_id, iteration, item_index HAVING count(*) > 1`,
    );
    for (const row of duplicateRows.rows) problem(`run ${row.key} has ${row.count} rows`);
    const runs = (
      await client.query<RunFacts>(
        `SELECT s.id, s.execution_id, s.step_id, s.item_index, s.item_count, s.status, s.output,
                count(a.id) FILTER (WHERE a.kind = 'claim')::int AS claims,
                count(a.id) FILTER (WHERE a.kind = 'complete')::int AS completions
           FROM step_executions s LEFT JOIN fault_audit a ON a.run_id = s.id
          GROUP BY s.id ORDER BY s.id`,
      )
    ).rows;
    let duplicatedCompletions = duplicateRows.rows.length;
    let rerunAttempts = 0;
    for (const run of runs) {
      rerunAttempts += Math.max(run.claims - 1, 0);
      if (run.completions > 1) {
        duplicatedCompletions += 1;
        problem(
          `run ${run.id} (${run.execution_id}/${run.step_id}) completed ${run.completions} times`,
        );
      }
      if (run.status === 'completed' && run.completions !== 1) {
        problem(`run ${run.id} is completed but recorded ${run.completions} completions`);
      }
    }
    const doubleEnds = await client.query<{ execution_id: string; count: number }>(
      `SELECT execution_id, count(*)::int AS count FROM fault_audit WHERE kind = 'finish'
        GROUP BY execution_id HAVING count(*) > 1`,
    );
    for (const row of doubleEnds.rows) {
      duplicatedCompletions += 1;
      problem(`execution ${row.execution_id} ended ${row.count} times`);
    }

    // 3. Side effects: at least once per completed run, at most once per claim.
    let repeatedSideEffects = 0;
    let sideEffectCalls = 0;
    if (options.sideEffects) {
      const { calls, pathOf } = options.sideEffects;
      const known = new Set<string>();
      for (const run of runs) {
        const path = pathOf(run);
        if (path === null) continue;
        known.add(path);
        const count = calls.get(path) ?? 0;
        if (run.status === 'completed') {
          if (count < 1) problem(`run ${path} completed without its side effect`);
          repeatedSideEffects += Math.max(count - 1, 0);
          const recorded = (run.output as { body?: { call?: unknown } } | null)?.body?.call;
          if (typeof recorded !== 'number' || recorded < 1 || recorded > count) {
            problem(`run ${path} recorded call ${String(recorded)} of ${count}`);
          }
        }
        if (count > Math.max(run.claims, 1)) {
          problem(
            `run ${path} made ${count} calls in ${run.claims} claims: more than once more per interrupted attempt`,
          );
        }
      }
      for (const [path, count] of calls) {
        sideEffectCalls += count;
        if (!known.has(path)) problem(`${count} calls to ${path}, which is no run's side effect`);
      }
    }

    // 4. Counters and stats agree with the rows.
    const counters = await client.query<{
      id: string;
      execution_count: number;
      success_count: number;
      failure_count: number;
      total: number;
      ended: number;
      completed: number;
      failed: number;
    }>(
      // The counters as readers see them: the workflow's row plus its unfolded deltas.
      `SELECT c.id, c.execution_count, c.success_count, c.failure_count,
              count(e.id)::int AS total,
              count(e.id) FILTER (WHERE e.status = ANY($1::text[]))::int AS ended,
              count(e.id) FILTER (WHERE e.status = 'completed')::int AS completed,
              count(e.id) FILTER (WHERE e.status IN ('failed', 'timed_out'))::int AS failed
         FROM (SELECT w.id, ${COUNTER_COLUMNS} FROM workflows w ${UNFOLDED_DELTAS}) AS c
         LEFT JOIN workflow_executions e ON e.workflow_id = c.id
        GROUP BY c.id, c.execution_count, c.success_count, c.failure_count`,
      [TERMINAL],
    );
    for (const row of counters.rows) {
      if (
        row.execution_count !== row.ended ||
        row.success_count !== row.completed ||
        row.failure_count !== row.failed
      ) {
        problem(
          `workflow ${row.id} counters ${row.execution_count}/${row.success_count}/${row.failure_count} (ended/success/failure) disagree with rows ${row.ended}/${row.completed}/${row.failed}`,
        );
      }
      if (options.apiUrl) {
        const response = await fetch(`${options.apiUrl}/workflows/${row.id}/stats`, {
          signal: AbortSignal.timeout(15_000),
        });
        if (response.status !== 200) {
          problem(`GET /workflows/${row.id}/stats answered ${response.status}`);
          continue;
        }
        const stats = (await response.json()) as Record<string, unknown>;
        const expected = {
          execution_count: row.total,
          finished_count: row.ended,
          success_count: row.completed,
          failure_count: row.failed,
          running_count: row.total - row.ended,
        };
        for (const [key, value] of Object.entries(expected)) {
          if (stats[key] !== value) {
            problem(`stats of ${row.id}: ${key} is ${String(stats[key])}, rows say ${value}`);
          }
        }
        const workflow = await fetch(`${options.apiUrl}/workflows/${row.id}`, {
          signal: AbortSignal.timeout(15_000),
        });
        const body = (await workflow.json()) as Record<string, unknown>;
        if (
          body.execution_count !== row.ended ||
          body.success_count !== row.completed ||
          body.failure_count !== row.failed
        ) {
          problem(
            `GET /workflows/${row.id} counters ${String(body.execution_count)}/${String(body.success_count)}/${String(body.failure_count)} disagree with rows ${row.ended}/${row.completed}/${row.failed}`,
          );
        }
      }
    }

    return {
      executions: executions.length,
      accepted: accepted.size,
      unacknowledged,
      lost,
      duplicatedCompletions,
      runs: runs.length,
      rerunAttempts,
      repeatedSideEffects,
      sideEffectCalls,
      problems,
    };
  } finally {
    await client.end();
  }
}
