import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ROLES } from '../../domain/roles.js';
import { WORKFLOW_TYPES } from '../../domain/workflow-definition.js';
import { builtInStepHandlers } from '../../engine/steps/registry.js';
import { SERVICE_NAME, SERVICE_VERSION } from '../../project.js';
import { AUTH_MODES } from '../../security/auth-settings.js';

const infoSchema = z.object({
  service: z.string(),
  version: z.string(),
  role: z.enum(['all', 'api', 'worker']),
  node_version: z.string(),
  started_at: z.string(),
  uptime_seconds: z.number(),
  workflow_types: z.array(z.string()),
  built_in_step_types: z.array(z.string()),
  limits: z.object({
    max_steps: z.number(),
    max_step_name_length: z.number(),
    max_workflow_name_length: z.number(),
    max_description_length: z.number(),
    max_config_bytes: z.number(),
    max_metadata_bytes: z.number(),
    max_tags: z.number(),
    max_input_bytes: z.number(),
    max_body_bytes: z.number(),
    max_json_depth: z.number(),
  }),
  auth: z
    .object({
      mode: z.enum(AUTH_MODES),
      open: z.boolean().describe('True: no credentials needed, every caller acts as admin'),
    })
    .describe('How callers authenticate (README "Security")'),
  caller: z
    .object({
      kind: z.enum(['anonymous', 'api-key', 'jwt']),
      id: z.string(),
      role: z.enum(ROLES).nullable(),
    })
    .nullable()
    .describe('Who asks, and their role: the dashboard offers only the actions it allows'),
});

export const infoRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/info',
    {
      schema: {
        operationId: 'getServiceInfo',
        tags: ['service'],
        summary: 'Service information: version, role, limits and capabilities',
        response: { 200: infoSchema },
      },
    },
    async (request) => {
      const { config } = app;
      const caller = request.caller;
      return {
        service: SERVICE_NAME,
        version: SERVICE_VERSION,
        role: config.SERVICE_ROLE,
        node_version: process.version,
        started_at: app.lifecycle.startedAt.toISOString(),
        uptime_seconds: Math.round(process.uptime()),
        workflow_types: [...WORKFLOW_TYPES],
        built_in_step_types: [...builtInStepHandlers.keys()],
        limits: {
          max_steps: config.MAX_STEPS,
          max_step_name_length: config.MAX_STEP_NAME_LENGTH,
          max_workflow_name_length: config.MAX_WORKFLOW_NAME_LENGTH,
          max_description_length: config.MAX_DESCRIPTION_LENGTH,
          max_config_bytes: config.MAX_CONFIG_BYTES,
          max_metadata_bytes: config.MAX_METADATA_BYTES,
          max_tags: config.MAX_TAGS,
          max_input_bytes: config.MAX_INPUT_BYTES,
          max_body_bytes: config.MAX_BODY_BYTES,
          max_json_depth: config.MAX_JSON_DEPTH,
        },
        auth: { mode: app.auth.mode, open: app.auth.open },
        caller: caller ? { kind: caller.kind, id: caller.id, role: caller.role } : null,
      };
    },
  );
};
