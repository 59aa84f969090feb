import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';

const ctx = useTestApp();

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

interface MediaType {
  example?: unknown;
  examples?: Record<string, unknown>;
  schema?: { example?: unknown };
}

interface Operation {
  operationId?: string;
  tags?: string[];
  summary?: string;
  requestBody?: { content?: Record<string, MediaType> };
}

/** An example given on the media type or, as zod's `.meta({ example })` puts it, its schema. */
function hasExample(media: MediaType): boolean {
  return (
    media.example !== undefined ||
    Object.keys(media.examples ?? {}).length > 0 ||
    media.schema?.example !== undefined
  );
}

async function operations(): Promise<Array<{ route: string; operation: Operation }>> {
  const response = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
  expect(response.statusCode).toBe(200);
  const paths = response.json().paths as Record<string, Record<string, Operation>>;
  return Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([method]) => METHODS.has(method))
      .map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, operation })),
  );
}

describe('OpenAPI operations', () => {
  it('every operation has a unique camelCase operationId and a tag', async () => {
    const all = await operations();
    expect(all.length).toBeGreaterThan(20);
    const seen = new Map<string, string>();
    for (const { route, operation } of all) {
      const id = operation.operationId;
      expect(id, `${route} has no operationId`).toBeTypeOf('string');
      expect(id, route).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      expect(seen.get(id as string), `${route} reuses ${id}`).toBeUndefined();
      seen.set(id as string, route);
      expect(operation.tags?.length ?? 0, `${route} has no tag`).toBeGreaterThan(0);
    }
  });

  // Spectral's rules (npm run lint) and the Swagger UI read these; README "Development".
  it('every operation has a summary and every request body an example', async () => {
    for (const { route, operation } of await operations()) {
      expect(operation.summary?.trim() ?? '', `${route} has no summary`).not.toBe('');
      const content = Object.entries(operation.requestBody?.content ?? {});
      for (const [type, media] of content) {
        expect(hasExample(media), `${route} ${type} body has no example`).toBe(true);
      }
    }
  });

  it('names the operations client generators build methods from', async () => {
    const byRoute = new Map((await operations()).map((o) => [o.route, o.operation.operationId]));
    const expected: Record<string, string> = {
      'GET /workflows': 'listWorkflows',
      'POST /workflows': 'createWorkflow',
      'GET /workflows/{id}': 'getWorkflow',
      'PUT /workflows/{id}': 'updateWorkflow',
      'DELETE /workflows/{id}': 'deleteWorkflow',
      'POST /workflows/{id}/execute': 'executeWorkflow',
      'GET /executions': 'listExecutions',
      'GET /executions/{id}': 'getExecution',
      'POST /executions/{id}/cancel': 'cancelExecution',
      'POST /executions/{id}/retry': 'retryExecution',
      'POST /executions/{id}/pause': 'pauseExecution',
      'POST /executions/{id}/resume': 'resumeExecution',
      'POST /events': 'publishEvent',
      'GET /events': 'listEvents',
      'POST /tasks/poll': 'pollTasks',
      'POST /tasks/{token}/complete': 'completeTask',
      'GET /stats': 'getSystemStats',
      'GET /health/live': 'getLiveness',
      'PUT /limits/{name}': 'putLimit',
      'GET /limits': 'listLimits',
      'GET /limits/{name}': 'getLimit',
      'DELETE /limits/{name}': 'deleteLimit',
    };
    for (const [route, id] of Object.entries(expected)) expect(byRoute.get(route), route).toBe(id);
  });
});
