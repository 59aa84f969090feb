import cors from '@fastify/cors';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';

/** CORS for the origins in CORS_ORIGINS; without any, no CORS header is ever sent. */
export const corsPlugin = fp<{ config: Pick<Config, 'CORS_ORIGINS'> }>(
  async (app, { config }) => {
    if (config.CORS_ORIGINS.length === 0) return;
    await app.register(cors, {
      origin: config.CORS_ORIGINS.includes('*') ? '*' : config.CORS_ORIGINS,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: [
        'authorization',
        'content-type',
        'idempotency-key',
        'last-event-id',
        'x-api-key',
        'x-request-id',
      ],
      exposedHeaders: [
        'idempotent-replayed',
        'location',
        'ratelimit-limit',
        'ratelimit-remaining',
        'ratelimit-reset',
        'retry-after',
        'x-request-id',
      ],
      credentials: false,
      maxAge: 600,
    });
  },
  { name: 'security-cors', dependencies: ['security-headers'] },
);
