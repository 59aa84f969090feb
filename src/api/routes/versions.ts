import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { idParams } from '../../schemas/common.js';
import { executionViewSchema } from '../../schemas/executions.js';
import { invalidRequestResponse, problemResponse } from '../../schemas/problem.js';
import {
  upgradeBodySchema,
  upgradePlanSchema,
  versionListQuerySchema,
  versionPageSchema,
  versionParamsSchema,
  versionViewSchema,
} from '../../schemas/versions.js';

/**
 * Version history of workflows and upgrades of executions to another version (README
 * "Versions, upgrades and edits"). Thin: parse, call one use case, reply.
 */
export const versionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/workflows/:id/versions',
    {
      schema: {
        operationId: 'listWorkflowVersions',
        tags: ['workflows'],
        summary: "A workflow's versions, newest first",
        description:
          'Each with who stored it (created_by) and a one-line summary of what changed against the version before; paginated with `limit` and `cursor`.',
        params: idParams(),
        querystring: versionListQuerySchema,
        response: {
          200: versionPageSchema,
          400: invalidRequestResponse,
          404: problemResponse('No workflow has this id'),
        },
      },
    },
    async (request) => app.workflows.versions(request.params.id, request.query),
  );

  app.get(
    '/workflows/:id/versions/:version',
    {
      schema: {
        operationId: 'getWorkflowVersion',
        tags: ['workflows'],
        summary: 'One version of a workflow with its full definition, as stored',
        params: versionParamsSchema,
        response: {
          200: versionViewSchema,
          400: invalidRequestResponse,
          404: problemResponse('No such workflow or version'),
        },
      },
    },
    async (request) => app.workflows.version(request.params.id, request.params.version),
  );

  app.post(
    '/executions/:id/upgrade',
    {
      schema: {
        operationId: 'upgradeExecution',
        tags: ['executions'],
        summary: 'Move a running, waiting, paused or failed execution to another version',
        description:
          "Default: the workflow's current version. Allowed when every step that has started or ended exists in the target with the same id and step type, and no ended step gains a dependency; otherwise 409 with every conflict in `errors`. A dry run answers the plan (kept, added, removed, replanned); a real upgrade answers the execution.",
        params: idParams(),
        body: upgradeBodySchema,
        response: {
          200: z.union([upgradePlanSchema, executionViewSchema]),
          400: invalidRequestResponse,
          404: problemResponse('No such execution, or its workflow has no such version'),
          409: problemResponse('Its status does not allow it, or the versions conflict'),
        },
      },
    },
    async (request) => {
      const body = request.body ?? { dry_run: false };
      return app.executions.upgrade(
        request.params.id,
        { toVersion: body.to_version, dryRun: body.dry_run },
        { actor: request.caller?.id ?? null, reason: body.reason ?? null },
      );
    },
  );
};
