import fp from 'fastify-plugin';
import { BulkOperationManager } from '../core/bulk-operation-manager.js';
import { EventManager } from '../core/event-manager.js';
import { ExecutionManager } from '../core/execution-manager.js';
import { TaskManager } from '../core/task-manager.js';
import { CancellationBus } from '../engine/cancellation-bus.js';
import { EffectApplier } from '../engine/effect-applier.js';
import { StateManager } from '../engine/state/state-manager.js';
import { StepQueue } from '../engine/step-queue.js';
import { SubworkflowLinks } from '../engine/subworkflow-links.js';
import { redisOptionsFromUrl } from '../store/redis-options.js';

/** The parts of the engine that both API and worker processes use. */
export interface EngineParts {
  state: StateManager;
  queue: StepQueue;
  bus: CancellationBus;
  effects: EffectApplier;
  /** The recovery sweep's applier: never fault-injected, since it is what repairs the faults. */
  recoveryEffects: EffectApplier;
  links: SubworkflowLinks;
}

declare module 'fastify' {
  interface FastifyInstance {
    executions: ExecutionManager;
    bulkOperations: BulkOperationManager;
    tasks: TaskManager;
    events: EventManager;
    engineParts: EngineParts;
  }
}

/** Execution use cases and the producer side of the engine (queue, abort broadcast). */
export const executionsPlugin = fp(
  async (app) => {
    const { config } = app;
    // Producers fail within seconds while Redis is away: the run stays queued in Postgres and
    // the recovery sweep enqueues it later, so a request never hangs on Redis. The offline
    // queue stays on because BullMQ's own connection setup (INFO) rejects unhandled without it.
    const queue = new StepQueue(
      {
        ...redisOptionsFromUrl(config.REDIS_URL),
        maxRetriesPerRequest: 1,
        commandTimeout: 2000,
        connectTimeout: 2000,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      },
      config.REDIS_PREFIX,
      app.redis,
    );
    queue.queue.on('error', () => {});
    const bus = new CancellationBus(CancellationBus.channelFor(config.REDIS_PREFIX));
    const state = new StateManager({
      pool: app.pg,
      expressionTimeoutMs: config.EXPRESSION_TIMEOUT_MS,
      maxForEachItems: config.MAX_FOR_EACH_ITEMS,
      eventBufferMs: config.EVENT_BUFFER_MS,
      maxCrashedClaims: config.MAX_CRASHED_CLAIMS,
      maxSubworkflowDepth: config.MAX_SUBWORKFLOW_DEPTH,
      logger: app.log.child({ component: 'engine' }),
    });
    const links = new SubworkflowLinks(app.pg, state);
    const applierOptions = {
      queue,
      bus,
      publisher: app.redis,
      invalidateWorkflow: (workflowId: string) => app.workflowCache.invalidate(workflowId),
      logger: app.log.child({ component: 'engine' }),
      links,
      pool: app.pg,
    };
    const effects = new EffectApplier({
      ...applierOptions,
      dropJobs: config.FAULT_INJECTION === 'drop-enqueue',
    });
    const recoveryEffects = new EffectApplier({ ...applierOptions, dropJobs: false });
    app.decorate('engineParts', { state, queue, bus, effects, recoveryEffects, links });
    app.decorate('executions', new ExecutionManager({ pool: app.pg, state, effects, config }));
    app.decorate('bulkOperations', new BulkOperationManager(app.pg));
    const tasks = new TaskManager({ pool: app.pg, state, effects });
    app.decorate('tasks', tasks);
    // Long polls would keep the HTTP server from draining: they answer (empty) first.
    app.addHook('preClose', async () => {
      tasks.stopPolling();
    });
    app.decorate(
      'events',
      new EventManager({
        pool: app.pg,
        state,
        effects,
        expressionTimeoutMs: config.EXPRESSION_TIMEOUT_MS,
      }),
    );
    app.addHook('onClose', async () => {
      await queue.close().catch(() => {});
    });
  },
  { name: 'executions', dependencies: ['infrastructure', 'workflows'] },
);
