import fp from 'fastify-plugin';
import { executionSnapshots } from '../core/execution-snapshot.js';
import { StatsManager } from '../core/stats-manager.js';
import { EventRelay } from '../monitoring/event-relay.js';
import { ExecutionEventHub } from '../monitoring/execution-event-hub.js';
import { ExecutionStreams } from '../monitoring/execution-stream.js';
import { ServiceMetrics } from '../monitoring/metrics.js';
import { readQueueDepth } from '../monitoring/queue-depth.js';
import { checkReadiness, type ReadinessSources } from '../monitoring/readiness.js';
import { StatsCache } from '../store/stats-cache.js';
import * as taskStore from '../store/task-store.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** This process's Prometheus registry and metrics. */
    metrics: ServiceMetrics;
    /** GET /workflows/{id}/stats and GET /stats. */
    stats: StatsManager;
    /** Live execution streams (SSE) and the Redis side they read. */
    executionStreams: ExecutionStreams;
    executionEventHub: ExecutionEventHub;
    /** Moves committed execution changes from the Postgres outbox to Redis. */
    eventRelay: EventRelay;
    /** What readiness probes: GET /health/ready and the workflow_ready gauge. */
    readinessSources: ReadinessSources;
  }
}

/**
 * Monitoring: metrics (with the HTTP request histogram), statistics, the execution event relay
 * and the live stream read side. Every role gets it: each process exposes its own metrics.
 */
export const monitoringPlugin = fp(
  async (app) => {
    const { config, engineParts } = app;
    const log = app.log.child({ component: 'monitoring' });
    const queueDepth = async () => [await readQueueDepth(engineParts.queue.queue)];
    // Pinned definitions never change: the state manager's cache serves stats and the relay.
    const definitionOf = (workflowId: string, version: number) =>
      engineParts.state.definition(app.pg, workflowId, version);

    const readinessSources: ReadinessSources = {
      pingPostgres: () => app.pg.query('SELECT 1'),
      pingRedis: () => app.redis.ping(),
      lifecycle: app.lifecycle,
      timeoutMs: config.DEPENDENCY_TIMEOUT_MS,
    };
    app.decorate('readinessSources', readinessSources);
    const metrics = new ServiceMetrics({
      queueDepth,
      probes: {
        readiness: async () => (await checkReadiness(readinessSources)).ready,
        externalTasks: async () => {
          // Before migrations the tables may not exist yet: nothing to report.
          if (!app.lifecycle.databaseReady) return { waiting: [], lastPolls: [] };
          const [waiting, lastPolls] = await Promise.all([
            taskStore.countWaitingTasks(app.pg),
            taskStore.allLastPolls(app.pg),
          ]);
          return { waiting, lastPolls };
        },
      },
    });
    app.decorate('metrics', metrics);
    app.addHook('onResponse', async (request, reply) => {
      metrics.observeRequest(
        {
          method: request.method,
          // The route pattern, so that ids in URLs do not explode the label's cardinality.
          route: request.routeOptions.url ?? 'unmatched',
          status_code: String(reply.statusCode),
        },
        reply.elapsedTime / 1000,
      );
    });

    app.decorate(
      'stats',
      new StatsManager({
        pool: app.pg,
        cache: new StatsCache(app.redis, config.REDIS_PREFIX, config.STATS_CACHE_SECONDS),
        queueDepth,
        window: config.STATS_WINDOW,
        definitionOf,
        retention: {
          days: config.RETENTION_DAYS,
          intervalSeconds: config.RETENTION_INTERVAL_SECONDS,
        },
      }),
    );

    const relay = new EventRelay({
      pool: app.pg,
      redis: app.redis,
      prefix: config.REDIS_PREFIX,
      intervalMs: config.EVENT_RELAY_INTERVAL_MS,
      streamMaxLength: config.STREAM_MAX_EVENTS,
      streamTtlSeconds: config.STREAM_RETENTION_SECONDS,
      // The outbox table exists once migrations ran (runtime.ts); until then nothing to relay.
      databaseReady: () => app.lifecycle.databaseReady,
      definitionOf,
      onPublished: (events) => metrics.observeEvents(events),
      logger: log,
    });
    app.decorate('eventRelay', relay);

    const hub = new ExecutionEventHub({
      redis: app.redis,
      redisUrl: config.REDIS_URL,
      prefix: config.REDIS_PREFIX,
      logger: log,
    });
    app.decorate('executionEventHub', hub);
    app.decorate(
      'executionStreams',
      new ExecutionStreams({
        hub,
        heartbeatMs: config.STREAM_HEARTBEAT_MS,
        ...executionSnapshots({
          pool: app.pg,
          executions: app.executions,
          state: engineParts.state,
        }),
      }),
    );

    app.addHook('onReady', async () => {
      relay.start();
    });
    // Open streams would keep the HTTP server from closing: end them first.
    app.addHook('preClose', async () => {
      hub.endSessions();
    });
    app.addHook('onClose', async () => {
      await relay.stop();
      hub.close();
    });
  },
  { name: 'monitoring', dependencies: ['infrastructure', 'executions'] },
);
