import pg from 'pg';
import type { BenchContext } from '../lib/context.js';
import {
  createWorkflowOver,
  executeOver,
  MIB,
  startServiceProcess,
} from '../lib/service-process.js';
import { runPool, waitUntil } from '../lib/util.js';

/**
 * The service as its own process (src/server.ts through tsx, SERVICE_ROLE=all, LOG_LEVEL info
 * as deployed), driven over loopback HTTP: executions of one-step noop workflows (WORKFLOWS of
 * them, round robin, so starts do not all queue on one workflow row), `concurrency` requests in
 * flight. Every `every` executions the benchmark waits until all started executions have
 * completed, asks the process for a full GC (bench/lib/gc-preload.ts, node --expose-gc) and
 * reads VmRSS from /proc/<pid>/status. It stops at `executions`, or earlier at a checkpoint
 * when the next batch would end past `deadline` (performance.now() ms, judged by how long the
 * last batch took), and says so.
 */
export interface MemorySample {
  executions: number;
  rssMiB: number;
  heapUsedMiB: number;
  seconds: number;
}

export interface MemoryFigures {
  samples: MemorySample[];
  executionsPerSecond: number;
  /** The time budget ran out before `executions`. */
  stoppedEarly: boolean;
  target: number;
}

const WORKFLOWS = 4;

export async function measureMemory(
  context: BenchContext,
  options: { executions: number; every: number; concurrency: number; deadline: number },
  log: (message: string) => void,
): Promise<MemoryFigures> {
  const service = await startServiceProcess(context, 'memory', { LOG_LEVEL: 'info' });
  const { base } = service;
  const db = new pg.Client({ connectionString: service.databaseUrl });
  try {
    await db.connect();
    const workflowIds: string[] = [];
    for (let i = 0; i < WORKFLOWS; i += 1) {
      workflowIds.push(
        await createWorkflowOver(base, {
          name: `bench memory ${i + 1}`,
          workflow_type: 'sequential',
          steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
        }),
      );
    }
    const completed = async () => {
      const { rows } = await db.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM workflow_executions WHERE status = 'completed'`,
      );
      return rows[0]?.count ?? 0;
    };
    const samples: MemorySample[] = [];
    const started = performance.now();
    let done = 0;
    let stoppedEarly = false;
    let lastBatchMs = 0;
    while (done < options.executions) {
      if (done > 0 && performance.now() + lastBatchMs > options.deadline) {
        stoppedEarly = true;
        break;
      }
      const batchStarted = performance.now();
      const checkpoint = Math.min(done + options.every, options.executions);
      await runPool(checkpoint - done, options.concurrency, async (index) => {
        const workflowId = workflowIds[(done + index) % WORKFLOWS] as string;
        await executeOver(base, workflowId, { n: done + index });
      });
      done = checkpoint;
      await waitUntil(
        `${checkpoint} completed executions`,
        async () => (await completed()) >= checkpoint,
        300_000,
        200,
      );
      lastBatchMs = performance.now() - batchStarted;
      const { rss, heapUsed } = await service.measure();
      const seconds = (performance.now() - started) / 1000;
      samples.push({
        executions: checkpoint,
        rssMiB: rss / MIB,
        heapUsedMiB: heapUsed / MIB,
        seconds,
      });
      if (
        checkpoint === options.every ||
        checkpoint % (5 * options.every) === 0 ||
        checkpoint === options.executions
      ) {
        log(
          `  after ${checkpoint} executions (${seconds.toFixed(0)} s): RSS ${(rss / MIB).toFixed(1)} MiB, heap ${(heapUsed / MIB).toFixed(1)} MiB`,
        );
      }
    }
    const last = samples[samples.length - 1] as MemorySample;
    if (stoppedEarly) {
      log(
        `  stopped after ${last.executions} executions (time budget): RSS ${last.rssMiB.toFixed(1)} MiB, heap ${last.heapUsedMiB.toFixed(1)} MiB`,
      );
    }
    return {
      samples,
      executionsPerSecond: last.executions / last.seconds,
      stoppedEarly,
      target: options.executions,
    };
  } finally {
    await db.end().catch(() => {});
    await service.stop();
  }
}
