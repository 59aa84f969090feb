import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** Prometheus exposition of this process's metrics (each process exposes its own). */
export const metricsRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetrics',
        tags: ['monitoring'],
        summary: 'Prometheus metrics of this process (text exposition format)',
        description:
          'HTTP request durations, execution and step counters, queue depth and recovery sweep actions. Scrape every process: each exposes its own counters.',
        produces: ['text/plain'],
        response: {
          200: z.string().describe('Prometheus text exposition format 0.0.4'),
        },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await app.metrics.expose();
      return reply.type(contentType).header('cache-control', 'no-store').send(body);
    },
  );
};
