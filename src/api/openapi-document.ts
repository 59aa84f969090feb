import type { SwaggerTransformObject } from '@fastify/swagger';

/**
 * Document-wide fixes to the OpenAPI document, applied once it is built from the routes, so a
 * route added later (routes change often, by several hands) still lints clean with Spectral's
 * `spectral:oas` ruleset (README "Development", `npm run lint`). Per-route content (summary,
 * tags, examples) stays with each route; tests/integration/openapi-operations.test.ts checks it.
 */

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);

interface OperationText {
  summary?: string;
  description?: string;
}

/**
 * Spectral's operation-description asks for a description; a route that gives none is
 * described by its summary, which every operation has.
 */
function describeOperations(paths: Record<string, Record<string, unknown> | undefined>): void {
  for (const item of Object.values(paths)) {
    for (const [method, operation] of Object.entries(item ?? {})) {
      if (!METHODS.has(method) || typeof operation !== 'object' || operation === null) continue;
      const text = operation as OperationText;
      if (!text.description && text.summary) text.description = text.summary;
    }
  }
}

export const completeOpenApiDocument: SwaggerTransformObject = (document) => {
  if ('openapiObject' in document) {
    const openapi = document.openapiObject;
    describeOperations((openapi.paths ?? {}) as Record<string, Record<string, unknown>>);
    return openapi;
  }
  return document.swaggerObject;
};
