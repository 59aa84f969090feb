import type pg from 'pg';
import { executeOver, type ServiceProcess } from './service-process.js';
import { runPool, waitUntil } from './util.js';

/** Batches of executions over HTTP, timed by what the database says: shared by the workloads
 * that drive a service process. */

export async function count(db: pg.Client, sql: string, values: unknown[]): Promise<number> {
  return (await db.query<{ n: number }>(sql, values)).rows[0]?.n ?? 0;
}

/** Starts `total` executions of `workflowId`, 20 in flight; seconds from first start to last end. */
export async function timedBatch(
  service: Pick<ServiceProcess, 'base'>,
  db: pg.Client,
  workflowId: string,
  total: number,
  input: (index: number) => Record<string, unknown> = () => ({}),
): Promise<number> {
  const started = performance.now();
  await runPool(total, 20, async (index) => {
    await executeOver(service.base, workflowId, input(index));
  });
  const done = `SELECT count(*)::int AS n FROM workflow_executions
                 WHERE workflow_id = $1 AND status = 'completed'`;
  await waitUntil(
    'the batch completed',
    async () => (await count(db, done, [workflowId])) === total,
    600_000,
    100,
  );
  return (performance.now() - started) / 1000;
}
