import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type pg from 'pg';

/**
 * The least any durable engine must do per step, written by hand: each step is one BullMQ job
 * whose processor records the step's result and queues the next step in one Postgres
 * transaction, then adds the next job. No claim, no scheduler, no outbox, no metrics: the
 * baseline the engine is measured against in the same run.
 *
 * - chain: position 0 .. length-1, each step queues the next.
 * - fan-out: a root step queues `width` branches; each branch decrements a counter on the
 *   chain row (so branches serialise on that row, as the engine's serialise on the execution
 *   row); the branch that reaches 0 queues the join.
 */

interface ReferenceJob {
  stepId: number;
  chainId: number;
  position: number;
  kind: 'chain' | 'fanout';
  /** chain: number of steps; fan-out: number of branches. */
  size: number;
}

const QUEUE = 'ref-steps';
const OUTPUT = JSON.stringify({});

export class ReferenceEngine {
  private readonly queueConnection: Redis;
  private readonly workerConnection: Redis;
  private readonly queue: Queue<ReferenceJob>;
  private readonly worker: Worker<ReferenceJob>;

  constructor(
    private readonly pool: pg.Pool,
    redisUrl: string,
    prefix: string,
    concurrency: number,
  ) {
    this.queueConnection = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    this.workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    // The same job options and worker settings as the engine's step queue (src/engine).
    this.queue = new Queue<ReferenceJob>(QUEUE, {
      connection: this.queueConnection,
      prefix,
      defaultJobOptions: {
        removeOnComplete: true,
        removeOnFail: true,
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
      },
    });
    this.worker = new Worker<ReferenceJob>(QUEUE, (job) => this.process(job), {
      connection: this.workerConnection,
      prefix,
      concurrency,
      lockDuration: 30_000,
      stalledInterval: 30_000,
      maxStalledCount: 1000,
      autorun: false,
    });
    this.worker.on('error', (error) => console.error('reference worker error', error));
  }

  start(): void {
    void this.worker.run();
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.queue.close();
    this.queueConnection.disconnect();
    this.workerConnection.disconnect();
  }

  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  private async enqueue(jobs: ReferenceJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.queue.addBulk(
      jobs.map((data) => ({ name: 'step', data, opts: { jobId: `r-${data.stepId}` } })),
    );
  }

  /** Starts a chain of `length` steps: one transaction (chain + first step), one job. */
  async startChain(length: number, input: unknown = {}): Promise<number> {
    const job = await this.transaction(async (client) => {
      const chain = await client.query<{ id: number }>(
        'INSERT INTO bench_ref_chains (length, input) VALUES ($1, $2) RETURNING id',
        [length, JSON.stringify(input)],
      );
      const chainId = chain.rows[0]?.id as number;
      const step = await client.query<{ id: number }>(
        'INSERT INTO bench_ref_steps (chain_id, position) VALUES ($1, 0) RETURNING id',
        [chainId],
      );
      return { stepId: step.rows[0]?.id as number, chainId, position: 0, kind: 'chain' as const };
    });
    await this.enqueue([{ ...job, size: length }]);
    return job.chainId;
  }

  /** Starts a 1 -> width -> 1 fan-out. */
  async startFanout(width: number): Promise<number> {
    const job = await this.transaction(async (client) => {
      const chain = await client.query<{ id: number }>(
        'INSERT INTO bench_ref_chains (length, remaining) VALUES ($1, $2) RETURNING id',
        [width + 2, width],
      );
      const chainId = chain.rows[0]?.id as number;
      const step = await client.query<{ id: number }>(
        'INSERT INTO bench_ref_steps (chain_id, position) VALUES ($1, 0) RETURNING id',
        [chainId],
      );
      return { stepId: step.rows[0]?.id as number, chainId, position: 0, kind: 'fanout' as const };
    });
    await this.enqueue([{ ...job, size: width }]);
    return job.chainId;
  }

  private async process(job: Job<ReferenceJob>): Promise<void> {
    const data = job.data;
    const startedAt = new Date();
    // The step itself is a noop: its output is an empty object.
    const next = await this.transaction(async (client) => {
      const done = await client.query(
        `UPDATE bench_ref_steps SET status = 'completed', output = $2, started_at = $3, completed_at = now()
          WHERE id = $1 AND status = 'queued'`,
        [data.stepId, OUTPUT, startedAt],
      );
      // A redelivered job whose step is already recorded changes nothing.
      if (done.rowCount === 0) return [];
      return data.kind === 'chain'
        ? this.afterChainStep(client, data)
        : this.afterFanoutStep(client, data);
    });
    await this.enqueue(next);
  }

  private async finishChain(client: pg.PoolClient, chainId: number): Promise<void> {
    await client.query(
      `UPDATE bench_ref_chains SET status = 'completed', completed_at = now() WHERE id = $1`,
      [chainId],
    );
  }

  private async afterChainStep(client: pg.PoolClient, data: ReferenceJob): Promise<ReferenceJob[]> {
    if (data.position + 1 >= data.size) {
      await this.finishChain(client, data.chainId);
      return [];
    }
    const step = await client.query<{ id: number }>(
      'INSERT INTO bench_ref_steps (chain_id, position) VALUES ($1, $2) RETURNING id',
      [data.chainId, data.position + 1],
    );
    return [{ ...data, stepId: step.rows[0]?.id as number, position: data.position + 1 }];
  }

  private async afterFanoutStep(
    client: pg.PoolClient,
    data: ReferenceJob,
  ): Promise<ReferenceJob[]> {
    const width = data.size;
    if (data.position === 0) {
      const branches = await client.query<{ id: number; position: number }>(
        `INSERT INTO bench_ref_steps (chain_id, position)
         SELECT $1, p FROM generate_series(1, $2::int) AS p RETURNING id, position`,
        [data.chainId, width],
      );
      return branches.rows.map((row) => ({ ...data, stepId: row.id, position: row.position }));
    }
    if (data.position > width) {
      await this.finishChain(client, data.chainId);
      return [];
    }
    const counter = await client.query<{ remaining: number }>(
      'UPDATE bench_ref_chains SET remaining = remaining - 1 WHERE id = $1 RETURNING remaining',
      [data.chainId],
    );
    if (counter.rows[0]?.remaining !== 0) return [];
    const join = await client.query<{ id: number }>(
      'INSERT INTO bench_ref_steps (chain_id, position) VALUES ($1, $2) RETURNING id',
      [data.chainId, width + 1],
    );
    return [{ ...data, stepId: join.rows[0]?.id as number, position: width + 1 }];
  }
}

/** Chains (by id) that have completed. */
export async function countCompletedChains(pool: pg.Pool, ids: readonly number[]): Promise<number> {
  const { rows } = await pool.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM bench_ref_chains WHERE id = ANY($1::bigint[]) AND status = 'completed'`,
    [ids],
  );
  return rows[0]?.count ?? 0;
}

/** Seconds from the first chain's creation to the last one's completion (database clock). */
export async function chainSpanSeconds(pool: pg.Pool, ids: readonly number[]): Promise<number> {
  const { rows } = await pool.query<{ span: number }>(
    `SELECT extract(epoch FROM max(completed_at) - min(created_at))::float8 AS span
       FROM bench_ref_chains WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return rows[0]?.span ?? Number.NaN;
}

/** Milliseconds from each step's predecessor's completion to its start. */
export async function chainLatenciesMs(pool: pg.Pool, ids: readonly number[]): Promise<number[]> {
  const { rows } = await pool.query<{ latency: number }>(
    `SELECT extract(epoch FROM s.started_at - p.completed_at)::float8 * 1000 AS latency
       FROM bench_ref_steps s
       JOIN bench_ref_steps p ON p.chain_id = s.chain_id AND p.position = s.position - 1
      WHERE s.chain_id = ANY($1::bigint[])`,
    [ids],
  );
  return rows.map((row) => row.latency);
}
