import pg from 'pg';
import { count } from '../lib/batches.js';
import type { BenchContext } from '../lib/context.js';
import {
  callService,
  createWorkflowOver,
  executeOver,
  type ServiceProcess,
  startServiceProcess,
} from '../lib/service-process.js';
import { runPool, waitUntil } from '../lib/util.js';

/**
 * A bulk retry (README "Operations"), in a service process of its own (SERVICE_ROLE=all):
 * RETRIED executions fail (a step whose expression fails on their input), then one
 * `POST /executions/bulk {action: "retry"}` retries them all while PROBE executions of a
 * 3-step workflow run. Measured: seconds until the operation acted on every execution, until
 * every retried execution ended again, and the engine's step runs finished per second over
 * that time against the same probe batch alone.
 */

export interface BulkPlan {
  retried: number;
  probe: number;
}

export interface BulkFigures {
  actSeconds: number;
  settleSeconds: number;
  stepsPerSecondAlone: number;
  stepsPerSecondDuring: number;
  probePerSecondAlone: number;
  probePerSecondDuring: number;
}

const PROBE_STEPS = 3;

const ENDED = `SELECT count(*)::int AS n FROM workflow_executions
                WHERE workflow_id = $1 AND status = $2`;

/** Step runs that finished between two instants, whatever their workflow. */
async function finishedSteps(db: pg.Client, from: Date, to: Date): Promise<number> {
  return count(
    db,
    `SELECT count(*)::int AS n FROM step_executions WHERE completed_at >= $1 AND completed_at <= $2`,
    [from, to],
  );
}

/** Starts the probe batch (20 in flight) and resolves with its seconds once all completed. */
async function probeBatch(
  service: ServiceProcess,
  db: pg.Client,
  workflowId: string,
  total: number,
) {
  const started = performance.now();
  await runPool(total, 20, async () => {
    await executeOver(service.base, workflowId, {});
  });
  await waitUntil(
    'the probe batch completed',
    async () => (await count(db, ENDED, [workflowId, 'completed'])) >= total,
    600_000,
    100,
  );
  return (performance.now() - started) / 1000;
}

export async function measureBulk(
  context: BenchContext,
  plan: BulkPlan,
  log: (message: string) => void,
): Promise<BulkFigures> {
  const service = await startServiceProcess(context, 'bulk', {});
  const db = new pg.Client({ connectionString: service.databaseUrl });
  await db.connect();
  try {
    const failing = await createWorkflowOver(service.base, {
      name: 'fails on bad input',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'check',
          name: 'check',
          step_type: 'transform',
          config: { expression: '$number(input.n)' },
          retry_count: 0,
        },
      ],
    });
    const probe = (name: string) =>
      createWorkflowOver(service.base, {
        name,
        workflow_type: 'sequential',
        steps: Array.from({ length: PROBE_STEPS }, (_, index) => ({
          id: `s${index}`,
          name: `s${index}`,
          step_type: 'noop',
        })),
      });
    await runPool(plan.retried, 20, async () => {
      await executeOver(service.base, failing, { n: 'x' });
    });
    await waitUntil(
      'every execution failed',
      async () => (await count(db, ENDED, [failing, 'failed'])) === plan.retried,
      600_000,
      200,
    );

    const alone = await probe('probe alone');
    let from = new Date();
    const aloneSeconds = await probeBatch(service, db, alone, plan.probe);
    const stepsAlone = await finishedSteps(db, from, new Date());
    log(`  probe alone ${aloneSeconds.toFixed(1)} s (${stepsAlone} step runs)`);

    const during = await probe('probe during');
    from = new Date();
    const began = performance.now();
    const op = await callService<{ id: string }>(service.base, 'POST', '/executions/bulk', 202, {
      action: 'retry',
      filter: { workflow_id: failing, status: 'failed' },
    });
    const probing = probeBatch(service, db, during, plan.probe);
    let actSeconds = 0;
    await waitUntil(
      'the bulk retry acted on every execution',
      async () => {
        const current = await callService<{ status: string; done: number }>(
          service.base,
          'GET',
          `/operations/${op.id}`,
          200,
        );
        if (current.status === 'completed') actSeconds = (performance.now() - began) / 1000;
        return current.status === 'completed';
      },
      600_000,
      100,
    );
    // Every retried execution runs its failing step again and ends failed once more.
    await waitUntil(
      'every retried execution ended',
      async () =>
        (await count(
          db,
          `SELECT count(*)::int AS n FROM step_executions s
             JOIN workflow_executions e ON e.id = s.execution_id
            WHERE e.workflow_id = $1 AND s.first_attempt = 2 AND s.status = 'failed'`,
          [failing],
        )) === plan.retried,
      600_000,
      100,
    );
    const settleSeconds = (performance.now() - began) / 1000;
    const duringSeconds = await probing;
    const windowSeconds = Math.max(settleSeconds, duringSeconds);
    const stepsDuring = await finishedSteps(db, from, new Date());
    log(
      `  bulk retry of ${plan.retried}: acted in ${actSeconds.toFixed(1)} s, settled in ${settleSeconds.toFixed(1)} s; probe ${duringSeconds.toFixed(1)} s meanwhile`,
    );
    return {
      actSeconds,
      settleSeconds,
      stepsPerSecondAlone: stepsAlone / aloneSeconds,
      stepsPerSecondDuring: stepsDuring / windowSeconds,
      probePerSecondAlone: plan.probe / aloneSeconds,
      probePerSecondDuring: plan.probe / duringSeconds,
    };
  } finally {
    await db.end();
    await service.stop();
  }
}
