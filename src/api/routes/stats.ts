import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { idParams } from '../../schemas/common.js';
import { problemResponse } from '../../schemas/problem.js';
import { systemStatsSchema, workflowStatsSchema } from '../../schemas/stats.js';

/** Statistics: one workflow's executions and steps, and the whole service. */
export const statsRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/workflows/:id/stats',
    {
      schema: {
        operationId: 'getWorkflowStats',
        tags: ['monitoring'],
        summary: 'Execution and step statistics of one workflow',
        params: idParams(),
        response: {
          200: workflowStatsSchema,
          404: problemResponse('No such workflow'),
          503: problemResponse('Postgres is unavailable; retry later'),
        },
      },
    },
    async (request) => app.stats.workflowStats(request.params.id),
  );

  app.get(
    '/stats',
    {
      schema: {
        operationId: 'getSystemStats',
        tags: ['monitoring'],
        summary: 'Service-wide statistics: workflows, executions, throughput, queues, workers',
        response: {
          200: systemStatsSchema,
          503: problemResponse('Postgres is unavailable; retry later'),
        },
      },
    },
    async () => app.stats.systemStats(),
  );
};
