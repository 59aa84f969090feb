import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ROLES } from '../../domain/roles.js';
import { ApiKeyNotFoundError } from '../../errors.js';
import { problemResponse } from '../schemas.js';

/** API key management (admin only, per src/security/policy.ts). Thin: parse, call, reply. */

const timestamp = z.string().describe('ISO 8601 timestamp (UTC)');

const apiKeySchema = z.object({
  id: z.string().describe('Key id (ak_...), used to revoke it; not a secret'),
  name: z.string(),
  role: z.enum(ROLES),
  status: z.enum(['active', 'revoked', 'expired']),
  created_at: timestamp,
  created_by: z.string().nullable().describe('Who created it (key id or token subject)'),
  expires_at: timestamp.nullable(),
  revoked_at: timestamp.nullable(),
  last_used_at: timestamp.nullable().describe('Updated at most once a minute'),
});

const createdSchema = apiKeySchema
  .extend({
    key: z
      .string()
      .describe('The key itself, shown this once: only its hash is stored. Send it as X-API-Key'),
  })
  .meta({
    example: {
      id: 'ak_5f2b9c0e1d3a4b6c',
      name: 'ops',
      role: 'operator',
      status: 'active',
      created_at: '2026-11-25T18:00:00.000Z',
      created_by: 'ak_0a1b2c3d4e5f6071',
      expires_at: null,
      revoked_at: null,
      last_used_at: null,
      key: 'wfk_5f2b9c0e1d3a4b6c_q8n0Xv3r5tYb6uWc2eG7hJ9kL1mN4pQs8dF0aZ2xC6v',
    },
  });

// Printable text only: names end up in lists, logs and terminals.
const PRINTABLE = /^[^\p{Cc}\p{Cf}]+$/u;

const createBody = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(PRINTABLE, 'must not contain control characters')
      .describe('What the key is for, e.g. "ci-deploy"'),
    role: z.enum(ROLES).describe('viewer < operator < editor < admin'),
    expires_at: z.iso
      .datetime({ offset: true })
      .nullable()
      .optional()
      .describe('When the key stops working (future); omit for no expiry'),
  })
  .strict();

const listQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().min(1).max(2048).optional().describe('next_cursor of the previous page'),
  })
  .strict();

const idParams = z.object({ id: z.string().min(1).max(64) }).strict();

export const apiKeyRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/api-keys',
    {
      schema: {
        tags: ['security'],
        summary: 'Create an API key (admin)',
        description:
          'Answers 201 with the key in `key`. It is shown only now: the service stores a hash.',
        body: createBody,
        response: { 201: createdSchema, 400: problemResponse('The request is invalid') },
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
        tags: ['security'],
        summary: 'List API keys, newest first (admin); never shows keys or hashes',
        querystring: listQuery,
        response: {
          200: z.object({ items: z.array(apiKeySchema), next_cursor: z.string().nullable() }),
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
        tags: ['security'],
        summary: 'Revoke an API key (admin); it stops working at once, in every process',
        params: idParams,
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
