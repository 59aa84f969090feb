import helmet from '@fastify/helmet';
import fp from 'fastify-plugin';

/**
 * Security headers (@fastify/helmet). Registered before the other security plugins so that
 * every answer, their 401 and 429 included, carries them.
 */
export const securityHeadersPlugin = fp(
  async (app) => {
    await app.register(helmet, {
      contentSecurityPolicy: {
        // Deployments on plain HTTP inside a cluster must still load the docs' assets.
        directives: { 'upgrade-insecure-requests': null },
      },
    });
  },
  { name: 'security-headers' },
);
