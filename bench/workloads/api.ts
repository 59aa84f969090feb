import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { compareInterleaved, type LoadResult } from '../lib/autocannon.js';
import type { BenchContext } from '../lib/context.js';
import { serviceEnvironment, startInProcessService } from '../lib/service.js';
import { CHAIN_LENGTH, createWorkflow, sequentialWorkflow } from './engine.js';

/**
 * The API as a real listening server (127.0.0.1, port 0) with SERVICE_ROLE=api, so the step
 * engine does not compete with the HTTP path being measured; autocannon runs in its own process.
 *
 * Baselines are extra routes registered on the same app instance, at the same URLs, selected by
 * an `Accept-Version: 1.0.0` header (a Fastify route constraint): the same router, hooks
 * (security, rate limit, request id) and connection handling, only the handler differs.
 * - GET /workflows/{id} (bare): sends the bytes GET /workflows/{id} answered, pre-serialised.
 * - POST /workflows/{id}/execute (reference start): the least a durable start must do: one
 *   transaction inserting the execution and its first step, one BullMQ add, a 202 with the id.
 * Each figure and its baseline are measured in alternation (compareInterleaved).
 */
export interface ApiFigures {
  getCached: LoadResult;
  getBare: LoadResult;
  execute: LoadResult;
  executeReference: LoadResult;
  connections: number;
  seconds: number;
}

const BENCH_VERSION = { 'accept-version': '1.0.0' };

export async function measureApi(
  context: BenchContext,
  options: { connections: number; seconds: number; rounds: number; warmupSeconds: number },
  log: (message: string) => void,
): Promise<ApiFigures> {
  const database = await context.database('api');
  const prefix = context.prefix('api');
  const referenceConnection = new Redis(context.redisUrl, { maxRetriesPerRequest: 1 });
  const referenceQueue = new Queue('ref-starts', {
    connection: referenceConnection,
    prefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 5 },
  });
  let bareBody = '';
  const addBaselines = (app: FastifyInstance) => {
    app.get('/workflows/:id', { constraints: { version: '1.0.0' } }, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(bareBody),
    );
    app.post(
      '/workflows/:id/execute',
      { constraints: { version: '1.0.0' } },
      async (request, reply) => {
        const input = (request.body as { input_data?: unknown } | undefined)?.input_data ?? {};
        const client = await app.pg.connect();
        let ids: { chainId: number; stepId: number };
        try {
          await client.query('BEGIN');
          const chain = await client.query<{ id: number }>(
            'INSERT INTO bench_ref_chains (length, input) VALUES ($1, $2) RETURNING id',
            [CHAIN_LENGTH, JSON.stringify(input)],
          );
          const chainId = chain.rows[0]?.id as number;
          const step = await client.query<{ id: number }>(
            'INSERT INTO bench_ref_steps (chain_id, position) VALUES ($1, 0) RETURNING id',
            [chainId],
          );
          await client.query('COMMIT');
          ids = { chainId, stepId: step.rows[0]?.id as number };
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        } finally {
          client.release();
        }
        await referenceQueue.add('step', ids, { jobId: `r-${ids.stepId}` });
        return reply.code(202).send({ id: String(ids.chainId), status: 'running' });
      },
    );
  };
  const service = await startInProcessService(
    serviceEnvironment(database, context.redisUrl, prefix, { SERVICE_ROLE: 'api' }),
    { listen: true, beforeReady: addBaselines },
  );
  try {
    const workflowId = await createWorkflow(
      service.app,
      sequentialWorkflow('bench api', CHAIN_LENGTH),
    );
    const url = `${service.url}/workflows/${workflowId}`;
    // The first read fills the cache; the bare route answers exactly what it answered.
    const first = await fetch(url);
    bareBody = await first.text();
    if (first.status !== 200) throw new Error(`GET ${url}: ${first.status} ${bareBody}`);
    const load = { connections: options.connections, seconds: options.seconds };
    const plan = {
      seconds: options.seconds,
      rounds: options.rounds,
      warmupSeconds: options.warmupSeconds,
    };
    const get = { connections: options.connections, url };
    const gets = await compareInterleaved(get, { ...get, headers: BENCH_VERSION }, plan);
    const getCached = gets.figure;
    const getBare = gets.baseline;
    log(
      `  GET /workflows/{id}: ${getCached.requestsPerSecond.toFixed(0)} req/s; bare route ${getBare.requestsPerSecond.toFixed(0)} req/s`,
    );
    const post = {
      connections: options.connections,
      url: `${url}/execute`,
      method: 'POST' as const,
      body: JSON.stringify({ input_data: { source: 'bench' } }),
    };
    const json = { 'content-type': 'application/json' };
    const executes = await compareInterleaved(
      { ...post, headers: json },
      { ...post, headers: { ...json, ...BENCH_VERSION } },
      plan,
    );
    const execute = executes.figure;
    const executeReference = executes.baseline;
    log(
      `  POST /workflows/{id}/execute: ${execute.requestsPerSecond.toFixed(0)} req/s, p99 ${execute.latencyP99Ms} ms; reference start ${executeReference.requestsPerSecond.toFixed(0)} req/s, p99 ${executeReference.latencyP99Ms} ms`,
    );
    return { getCached, getBare, execute, executeReference, ...load };
  } finally {
    await service.close();
    await referenceQueue.close();
    referenceConnection.disconnect();
  }
}
