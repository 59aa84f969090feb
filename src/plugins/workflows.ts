import fp from 'fastify-plugin';
import { WorkflowManager } from '../core/workflow-manager.js';
import { WorkflowCache } from '../store/workflow-cache.js';
import { WorkflowStore } from '../store/workflow-store.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Workflow definition use cases (create, get, list, update, delete). */
    workflows: WorkflowManager;
    /** Cache of workflow views; the engine invalidates it when a workflow's counters change. */
    workflowCache: WorkflowCache;
  }
}

/** Workflow store, cache and manager, built on the shared Postgres pool and Redis client. */
export const workflowsPlugin = fp(
  async (app) => {
    const { config } = app;
    const store = new WorkflowStore(app.pg);
    const cache = new WorkflowCache({
      redis: app.redis,
      prefix: config.REDIS_PREFIX,
      ttlSeconds: config.CACHE_TTL_SECONDS,
      logger: app.log,
    });
    app.decorate('workflowCache', cache);
    app.decorate('workflows', new WorkflowManager(store, cache, config));
    app.addHook('onClose', async () => {
      cache.close();
    });
  },
  { name: 'workflows', dependencies: ['infrastructure'] },
);
