import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { storedFilter } from '../core/bulk-operation-manager.js';
import { BulkRunner } from '../engine/bulk-runner.js';
import { CronScheduler } from '../engine/cron-scheduler.js';
import { RateTokens } from '../engine/rate-tokens.js';
import { RecoverySweep } from '../engine/recovery-sweep.js';
import { RetentionSweep } from '../engine/retention-sweep.js';
import { settleConnection } from '../engine/step-queue.js';
import { createStepWorker } from '../engine/step-worker.js';
import { executionStreamKey } from '../monitoring/execution-event-hub.js';
import { redisOptionsFromUrl } from '../store/redis-options.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Present in processes that run workers (SERVICE_ROLE all or worker). */
    engine?: {
      start(): Promise<void>;
      sweep: RecoverySweep;
      bulk: BulkRunner;
      retention: RetentionSweep;
    };
  }
}

/**
 * Workers, the recovery sweep, retention and the abort listener. Started only once migrations
 * have run (runtime.ts); on close, workers get the grace period to finish, then hand jobs back.
 */
export const enginePlugin = fp(
  async (app) => {
    const { config, engineParts } = app;
    const log = app.log.child({ component: 'engine' });
    // Workers block on Redis and must retry forever (BullMQ's requirement).
    const subscriber = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
    subscriber.on('error', () => {});
    const worker = createStepWorker({
      connection: { ...redisOptionsFromUrl(config.REDIS_URL), maxRetriesPerRequest: null },
      prefix: config.REDIS_PREFIX,
      concurrency: config.WORKER_CONCURRENCY,
      lockDurationMs: config.JOB_LOCK_MS,
      pool: app.pg,
      state: engineParts.state,
      effects: engineParts.effects,
      bus: engineParts.bus,
      env: {
        httpAllowedHosts: config.HTTP_STEP_ALLOWED_HOSTS,
        httpMaxResponseBytes: config.HTTP_STEP_MAX_RESPONSE_BYTES,
        expressionTimeoutMs: config.EXPRESSION_TIMEOUT_MS,
      },
      counts: app.redis,
      limits: {
        pool: app.pg,
        // A failed command turns the run away briefly (app.redis fails fast), never hangs.
        tokens: new RateTokens(app.redis, config.REDIS_PREFIX),
        expressionTimeoutMs: config.EXPRESSION_TIMEOUT_MS,
      },
      logger: log,
    });
    const sweep = new RecoverySweep({
      pool: app.pg,
      state: engineParts.state,
      queue: engineParts.queue,
      effects: engineParts.recoveryEffects,
      links: engineParts.links,
      intervalMs: config.SWEEP_INTERVAL_MS,
      staleAfterMs: config.SWEEP_STALE_AFTER_MS,
      logger: log,
      onReport: (report) => app.metrics.observeSweep(report),
    });
    const cron = new CronScheduler({
      pool: app.pg,
      state: engineParts.state,
      effects: engineParts.effects,
      intervalMs: config.SCHEDULE_INTERVAL_MS,
      logger: log,
    });
    const bulk = new BulkRunner({
      pool: app.pg,
      state: engineParts.state,
      effects: engineParts.effects,
      filterOf: storedFilter,
      logger: log,
      batchSize: config.BULK_BATCH_SIZE,
      parallel: config.BULK_PARALLEL,
      // Like a step's job: a process that stops renewing loses the operation after this long.
      leaseMs: config.JOB_LOCK_MS,
    });
    const retention = new RetentionSweep({
      pool: app.pg,
      days: config.RETENTION_DAYS,
      intervalMs: config.RETENTION_INTERVAL_SECONDS * 1000,
      logger: log,
      // Their event logs expire anyway (STREAM_RETENTION_SECONDS): one call per batch frees
      // the memory at once.
      forget: async (ids) => {
        await app.redis.unlink(...ids.map((id) => executionStreamKey(config.REDIS_PREFIX, id)));
      },
    });
    let started = false;

    app.decorate('engine', {
      sweep,
      bulk,
      retention,
      async start() {
        if (started) return;
        started = true;
        await engineParts.bus.listen(subscriber);
        void worker.run();
        sweep.start();
        cron.start();
        bulk.start();
        retention.start();
        log.info({ concurrency: config.WORKER_CONCURRENCY }, 'engine started');
      },
    });

    app.addHook('onClose', async () => {
      await retention.stop();
      await cron.stop();
      await bulk.stop();
      await sweep.stop();
      await settleConnection(worker);
      if (started) {
        const graceful = worker.close();
        const timer = new Promise((resolve) =>
          setTimeout(resolve, config.SHUTDOWN_GRACE_MS * 0.6).unref(),
        );
        await Promise.race([graceful, timer]);
        // Jobs still running are handed back: their locks lapse and another worker takes them.
        await worker.close(true);
      } else {
        await worker.close(true);
      }
      subscriber.disconnect();
    });
  },
  { name: 'engine', dependencies: ['infrastructure', 'executions', 'monitoring'] },
);
