import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { useJsonBodyParser } from './api/json-body.js';
import { completeOpenApiDocument } from './api/openapi-document.js';
import { registerProblemDetails, sendFrameworkProblem } from './api/problem-details.js';
import { apiKeyRoutes } from './api/routes/api-keys.js';
import { eventRoutes } from './api/routes/events.js';
import { executionStreamRoutes } from './api/routes/execution-stream.js';
import { executionRoutes } from './api/routes/executions.js';
import { healthRoutes } from './api/routes/health.js';
import { infoRoutes } from './api/routes/info.js';
import { limitRoutes } from './api/routes/limits.js';
import { metricsRoutes } from './api/routes/metrics.js';
import { operationRoutes } from './api/routes/operations.js';
import { statsRoutes } from './api/routes/stats.js';
import { taskRoutes } from './api/routes/tasks.js';
import { uiRoutes } from './api/routes/ui.js';
import { versionRoutes } from './api/routes/versions.js';
import { workflowRoutes } from './api/routes/workflows.js';
import type { Config } from './config.js';
import { loggerOptions } from './logger.js';
import { enginePlugin } from './plugins/engine.js';
import { executionsPlugin } from './plugins/executions.js';
import { infrastructurePlugin } from './plugins/infrastructure.js';
import { limitsPlugin } from './plugins/limits.js';
import { monitoringPlugin } from './plugins/monitoring.js';
import { accessPolicyPlugin, SECURITY_SCHEMES } from './plugins/security/access-policy.js';
import { authenticationPlugin } from './plugins/security/authentication.js';
import { corsPlugin } from './plugins/security/cors.js';
import { securityHeadersPlugin } from './plugins/security/headers.js';
import { inputGuardPlugin } from './plugins/security/input-guard.js';
import { rateLimitsPlugin } from './plugins/security/rate-limits.js';
import { workflowsPlugin } from './plugins/workflows.js';
import { SERVICE_VERSION } from './project.js';
import { trustProxyOption } from './security/trust-proxy.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Builds the Fastify instance for the configured role: external plugins first, then the
 * application's services, then routes. Boot (listen, signals) is server.ts's job.
 * Every role serves the health probes, so Kubernetes can probe workers too.
 */
export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config),
    bodyLimit: config.MAX_BODY_BYTES,
    // Behind an ingress, request.ip (rate limits, failure budgets, logs) is the real client.
    trustProxy: trustProxyOption(config.TRUST_PROXY),
    // A caller's X-Request-Id is kept when it is a plain token; anything else is replaced,
    // so log lines cannot be forged through it.
    requestIdHeader: false,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    requestTimeout: 60_000,
    connectionTimeout: 65_000,
    return503OnClosing: true,
    frameworkErrors: sendFrameworkProblem,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemDetails(app);
  // Empty JSON bodies are no body; nesting is bounded before parsing (src/api/json-body.ts).
  useJsonBodyParser(app, config.MAX_JSON_DEPTH);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // Security before any route (docs/ARCHITECTURE.md, "Security"). Headers first, so every
  // answer (401 and 429 included) carries them; the access policy before every route and
  // before swagger, as it gives each route its access and refuses uncovered ones.
  await app.register(securityHeadersPlugin);
  await app.register(corsPlugin, { config });
  await app.register(accessPolicyPlugin, { config });
  await app.register(rateLimitsPlugin, { config });
  await app.register(authenticationPlugin, { config });
  await app.register(inputGuardPlugin);

  await registerOpenApi(app);

  await app.register(infrastructurePlugin, { config });
  await app.register(workflowsPlugin);
  await app.register(limitsPlugin);
  await app.register(executionsPlugin);
  await app.register(monitoringPlugin);
  if (config.SERVICE_ROLE !== 'api') await app.register(enginePlugin);

  await app.register(healthRoutes);
  await app.register(infoRoutes);
  await app.register(metricsRoutes);
  if (config.SERVICE_ROLE !== 'worker') {
    await app.register(workflowRoutes);
    await app.register(limitRoutes);
    await app.register(executionRoutes);
    await app.register(versionRoutes);
    await app.register(operationRoutes);
    await app.register(eventRoutes);
    await app.register(taskRoutes);
    await app.register(executionStreamRoutes);
    await app.register(statsRoutes);
    await app.register(uiRoutes);
    await app.register(apiKeyRoutes);
  }
  return app;
}

/** The OpenAPI document (from the routes' zod schemas) at /docs/json, and its UI at /docs. */
async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Workflow Service',
        version: SERVICE_VERSION,
        description:
          'Stores workflow definitions and runs them durably (Postgres is the source of truth, BullMQ runs steps). Callers authenticate with an API key (X-API-Key) or a bearer JWT; README "Security" lists what each role may do.',
        contact: { name: 'Workflow Service maintainers' },
        license: { name: 'MIT' },
      },
      // Relative: the API is served by the host that serves this document, wherever it runs.
      servers: [{ url: '/', description: 'The host serving this document' }],
      tags: [
        { name: 'workflows', description: 'Workflow definitions' },
        {
          name: 'limits',
          description: 'Named limits that steps of any workflow share (flow control)',
        },
        { name: 'executions', description: 'Running and finished executions' },
        { name: 'events', description: 'Events that start workflows and resume waiting steps' },
        {
          name: 'tasks',
          description: 'External tasks, claimed and completed by workers of other services',
        },
        { name: 'health', description: 'Probes' },
        { name: 'service', description: 'Service information' },
        { name: 'monitoring', description: 'Statistics, metrics and the dashboard' },
        { name: 'security', description: 'API keys (admin)' },
      ],
      components: { securitySchemes: SECURITY_SCHEMES },
    },
    transform: jsonSchemaTransform,
    transformObject: completeOpenApiDocument,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
