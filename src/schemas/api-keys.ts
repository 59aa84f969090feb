import { z } from 'zod';
import { ROLES } from '../domain/roles.js';
import { pageOf, timestamp } from './common.js';

/** API keys as the admin API shows them (never the key's hash), and the requests. */

export const apiKeySchema = z.object({
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

export const apiKeyCreatedSchema = apiKeySchema
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

// Printable text only: names end up in lists, logs and terminals. A refinement, not .regex():
// a pattern would reach the OpenAPI document, where clients and Spectral compile it without the
// `u` flag and read \p{Cc} as the letters p, C, c (README "Development", OpenAPI lint).
const CONTROL = /[\p{Cc}\p{Cf}]/u;

export const apiKeyCreateBodySchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .refine((name) => !CONTROL.test(name), 'must not contain control characters')
      .describe('What the key is for, e.g. "ci-deploy"'),
    role: z.enum(ROLES).describe('viewer < operator < editor < admin'),
    expires_at: z.iso
      .datetime({ offset: true })
      .nullable()
      .optional()
      .describe('When the key stops working (future); omit for no expiry'),
  })
  .strict()
  .meta({
    example: { name: 'ci-deploy', role: 'operator', expires_at: '2027-06-01T00:00:00.000Z' },
  });

export const apiKeyListQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().min(1).max(2048).optional().describe('next_cursor of the previous page'),
  })
  .strict();

export const apiKeyPageSchema = pageOf(apiKeySchema);
