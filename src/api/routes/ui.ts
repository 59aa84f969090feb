import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EXECUTION_STATUSES, FINISHED_EXECUTION_STATUSES } from '../../domain/statuses.js';
import { RouteNotFoundError } from '../../errors.js';
import { projectRoot } from '../../project.js';

/** The dashboard's static files: plain HTML, CSS and JS modules, no build step. Read from the
 * project root at run time, so `npm run build` (dist/) and the image need only ship `src/ui`. */
export const UI_DIRECTORY = path.join(projectRoot, 'src', 'ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  type: string;
  body: Buffer;
  etag: string;
}

function asset(type: string, body: Buffer): Asset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { type, body, etag };
}

/**
 * `statuses.js`: the dashboard's status lists, generated from src/domain/statuses.ts so the
 * browser code never keeps a copy of its own.
 */
function statusesModule(): Asset {
  const lists = { EXECUTION_STATUSES, FINISHED_EXECUTION_STATUSES };
  const source = Object.entries(lists)
    .map(([name, list]) => `export const ${name} = ${JSON.stringify(list)};`)
    .join('\n');
  return asset('text/javascript; charset=utf-8', Buffer.from(`${source}\n`));
}

/** Every file of the dashboard, loaded once: a fixed set, so no request path reaches the disk. */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>([['statuses.js', statusesModule()]]);
  for (const name of readdirSync(UI_DIRECTORY)) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    assets.set(name, asset(type, readFileSync(path.join(UI_DIRECTORY, name))));
  }
  return assets;
}

/** The dashboard at /ui (the page is public; it asks for a key or token for its API calls). */
export const uiRoutes: FastifyPluginAsyncZod = async (app) => {
  const assets = loadAssets();

  const serve = (name: string, url: string) => {
    const asset = assets.get(name);
    if (!asset) throw new RouteNotFoundError('GET', url);
    return asset;
  };

  app.get(
    '/ui',
    {
      schema: {
        operationId: 'getDashboard',
        tags: ['monitoring'],
        summary: 'Dashboard (HTML)',
        produces: ['text/html'],
      },
    },
    async (request, reply) => {
      const asset = serve('index.html', request.url);
      return reply
        .type(asset.type)
        .header('cache-control', 'no-cache')
        .header('etag', asset.etag)
        .send(asset.body);
    },
  );

  app.get(
    '/ui/*',
    {
      schema: {
        operationId: 'getDashboardAsset',
        tags: ['monitoring'],
        summary: 'Dashboard assets',
        params: z.object({ '*': z.string().max(200) }),
        produces: ['text/html', 'text/javascript', 'text/css'],
        hide: true,
      },
    },
    async (request, reply) => {
      const name = request.params['*'] || 'index.html';
      const asset = serve(name, request.url);
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply
        .type(asset.type)
        .header('cache-control', 'no-cache')
        .header('etag', asset.etag)
        .send(asset.body);
    },
  );
};
