import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { checkReadiness } from '../../monitoring/readiness.js';
import { SERVICE_NAME, SERVICE_VERSION } from '../../project.js';

const checkSchema = z.object({
  status: z.enum(['up', 'down']),
  latency_ms: z.number(),
  error: z.string().optional(),
});

const readinessSchema = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.object({ postgres: checkSchema, redis: checkSchema, migrations: checkSchema }),
  shutting_down: z.boolean(),
});

/** Kubernetes probes: no credentials, and /health/live touches no dependency. */
export const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/health',
    {
      schema: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Basic health check: the process is up',
        response: {
          200: z
            .object({ status: z.literal('ok'), service: z.string(), version: z.string() })
            .meta({ example: { status: 'ok', service: SERVICE_NAME, version: SERVICE_VERSION } }),
        },
      },
    },
    async () => ({ status: 'ok' as const, service: SERVICE_NAME, version: SERVICE_VERSION }),
  );

  app.get(
    '/health/live',
    {
      schema: {
        operationId: 'getLiveness',
        tags: ['health'],
        summary: 'Liveness probe: answers while the event loop runs',
        response: { 200: z.object({ status: z.literal('alive'), uptime_seconds: z.number() }) },
      },
    },
    async () => ({ status: 'alive' as const, uptime_seconds: Math.round(process.uptime()) }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary:
          'Readiness probe: Postgres and Redis answer, migrations applied, not shutting down',
        response: { 200: readinessSchema, 503: readinessSchema },
      },
    },
    async (_request, reply) => {
      const { ready, checks, shutting_down } = await checkReadiness(app.readinessSources);
      if (!ready) reply.code(503).header('retry-after', '5');
      return { status: ready ? ('ready' as const) : ('not_ready' as const), checks, shutting_down };
    },
  );
};
