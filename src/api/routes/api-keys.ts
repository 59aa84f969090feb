import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApiKeyNotFoundError } from '../../errors.js';
import {
  apiKeyCreateBodySchema,
  apiKeyCreatedSchema,
  apiKeyListQuerySchema,
  apiKeyPageSchema,
} from '../../schemas/api-keys.js';
import { idParams } from '../../schemas/common.js';
import { problemResponse } from '../../schemas/problem.js';

/** API key management (admin only, per src/security/policy.ts). Thin: parse, call, reply. */

export const apiKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/api-keys',
    {
      schema: {
        operationId: 'createApiKey',
        tags: ['security'],
        summary: 'Create an API key (admin)',
        description:
          'Answers 201 with the key in `key`. It is shown only now: the service stores a hash.',
        body: apiKeyCreateBodySchema,
        response: { 201: apiKeyCreatedSchema, 400: problemResponse('The request is invalid') },
      },
    },
    async (request, reply) => {
      const { name, role, expires_at } = request.body;
      const created = await app.apiKeys.create({
        name,
        role,
        expiresAt: expires_at ? new Date(expires_at) : null,
        createdBy: request.caller ? `${request.caller.kind}:${request.caller.id}` : null,
      });
      reply.header('cache-control', 'no-store');
      reply.header('location', `/api-keys/${created.id}`);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/api-keys',
    {
      schema: {
        operationId: 'listApiKeys',
        tags: ['security'],
        summary: 'List API keys, newest first (admin); never shows keys or hashes',
        querystring: apiKeyListQuerySchema,
        response: {
          200: apiKeyPageSchema,
          400: problemResponse('The request is invalid'),
        },
      },
    },
    async (request) => app.apiKeys.list(request.query),
  );

  app.delete(
    '/api-keys/:id',
    {
      schema: {
        operationId: 'revokeApiKey',
        tags: ['security'],
        summary: 'Revoke an API key (admin); it stops working at once, in every process',
        params: idParams(64),
        response: { 204: z.null().describe('Revoked'), 404: problemResponse('No such key') },
      },
    },
    async (request, reply) => {
      if (!(await app.apiKeys.revoke(request.params.id))) {
        throw new ApiKeyNotFoundError(request.params.id);
      }
      return reply.code(204).send(null);
    },
  );
};
