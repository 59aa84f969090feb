import fp from 'fastify-plugin';
import { LimitManager } from '../core/limit-manager.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Named limits shared across workflows (put, get, list, delete). */
    limits: LimitManager;
  }
}

/** The named limits' use cases, on the shared Postgres pool. */
export const limitsPlugin = fp(
  async (app) => {
    app.decorate('limits', new LimitManager(app.pg));
  },
  { name: 'limits', dependencies: ['infrastructure'] },
);
