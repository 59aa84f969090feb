import pg from 'pg';
import type { BenchContext } from '../lib/context.js';
import { CpuMeter } from '../lib/cpu.js';
import { waitUntil } from '../lib/util.js';
import { referenceDriver } from './chains.js';
import {
  CHAIN_LENGTH,
  type ChainFigures,
  type ChainPlan,
  FANOUT_WIDTH,
  measureChains,
} from './engine.js';
import { chainSpanSeconds, countCompletedChains, ReferenceEngine } from './reference.js';

/**
 * The reference engine with the service's resources: a pool of 20 connections (the service's
 * default) and one worker of concurrency 20 (WORKER_CONCURRENCY), on its own database.
 */
export async function measureReference(
  context: BenchContext,
  plan: ChainPlan,
  concurrency: number,
  log: (message: string) => void,
): Promise<ChainFigures> {
  const database = await context.database('reference');
  const pool = new pg.Pool({ connectionString: database.url, max: 20 });
  const engine = new ReferenceEngine(
    pool,
    context.redisUrl,
    context.prefix('reference'),
    concurrency,
  );
  engine.start();
  const admin = new pg.Pool({ connectionString: context.adminUrl, max: 1 });
  try {
    const runFanout = async () => {
      const id = await engine.startFanout(FANOUT_WIDTH);
      await waitUntil(
        'the reference fan-out',
        async () => (await countCompletedChains(pool, [id])) === 1,
        120_000,
        20,
      );
      return chainSpanSeconds(pool, [id]);
    };
    return await measureChains(
      referenceDriver(engine, pool, CHAIN_LENGTH),
      { run: runFanout, steps: FANOUT_WIDTH + 2 },
      plan,
      new CpuMeter(admin, database.name),
      log,
    );
  } finally {
    await admin.end();
    await engine.close();
    await pool.end();
  }
}
