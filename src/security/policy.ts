import type { Role } from '../domain/roles.js';

/**
 * THE access policy: every route the service serves, by method and Fastify route URL, with the
 * least role that may call it. The access-policy plugin (src/plugins/security/) refuses to
 * start when a route is registered that no entry covers, so a route added later cannot be left
 * open by accident: add its entry here. The security tests iterate over this table.
 *
 * - `probe`: no credentials and no rate limit (Kubernetes probes).
 * - `public`: no credentials, rate-limited per client IP (docs, dashboard page and assets).
 * - a role: that role or a stronger one (viewer < operator < editor < admin).
 *
 * Path parameters match whatever they are named (`/tasks/:token/complete` also covers
 * `/tasks/:taskToken/complete`); a URL ending in `/*` covers every route below it.
 */
export type Access = 'probe' | 'public' | Role;

export type PolicyMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

export interface RoutePolicy {
  method: PolicyMethod;
  url: string;
  access: Access;
  /** Also accepts the credential as `?access_token=` (browsers' EventSource cannot set headers). */
  queryToken?: boolean;
  /** This entry's access becomes `public` when the named setting is on. */
  publicWhen?: 'METRICS_PUBLIC';
}

export const ROUTE_POLICIES: readonly RoutePolicy[] = [
  // Probes and documentation.
  { method: 'GET', url: '/health', access: 'probe' },
  { method: 'GET', url: '/health/live', access: 'probe' },
  { method: 'GET', url: '/health/ready', access: 'probe' },
  { method: 'GET', url: '/docs', access: 'public' },
  { method: 'GET', url: '/docs/*', access: 'public' },
  // The dashboard page asks for a key or token and sends it with its API calls.
  { method: 'GET', url: '/ui', access: 'public' },
  { method: 'GET', url: '/ui/*', access: 'public' },
  // CORS preflight (registered only when CORS_ORIGINS is set); browsers send no credentials.
  { method: 'OPTIONS', url: '*', access: 'public' },

  // Reading.
  { method: 'GET', url: '/info', access: 'viewer' },
  { method: 'GET', url: '/metrics', access: 'viewer', publicWhen: 'METRICS_PUBLIC' },
  { method: 'GET', url: '/stats', access: 'viewer' },
  { method: 'GET', url: '/workflows', access: 'viewer' },
  { method: 'GET', url: '/workflows/:id', access: 'viewer' },
  { method: 'GET', url: '/workflows/:id/stats', access: 'viewer' },
  { method: 'GET', url: '/workflows/:id/versions', access: 'viewer' },
  { method: 'GET', url: '/workflows/:id/versions/:version', access: 'viewer' },
  { method: 'GET', url: '/executions', access: 'viewer' },
  { method: 'GET', url: '/executions/:id', access: 'viewer' },
  { method: 'GET', url: '/executions/:id/steps', access: 'viewer' },
  { method: 'GET', url: '/executions/:id/diagnosis', access: 'viewer' },
  { method: 'GET', url: '/executions/:id/history', access: 'viewer' },
  { method: 'GET', url: '/executions/:id/stream', access: 'viewer', queryToken: true },
  { method: 'GET', url: '/events', access: 'viewer' },
  { method: 'GET', url: '/limits', access: 'viewer' },
  { method: 'GET', url: '/limits/:name', access: 'viewer' },
  { method: 'GET', url: '/operations', access: 'viewer' },
  { method: 'GET', url: '/operations/:id', access: 'viewer' },

  // Running and steering executions, events, external tasks.
  { method: 'POST', url: '/workflows/:id/execute', access: 'operator' },
  { method: 'POST', url: '/executions/:id/cancel', access: 'operator' },
  { method: 'POST', url: '/executions/:id/retry', access: 'operator' },
  { method: 'POST', url: '/executions/:id/pause', access: 'operator' },
  { method: 'POST', url: '/executions/:id/resume', access: 'operator' },
  { method: 'POST', url: '/executions/:id/upgrade', access: 'operator' },
  // Bulk delete also needs admin: the use case checks the action against the caller's role.
  { method: 'POST', url: '/executions/bulk', access: 'operator' },
  { method: 'POST', url: '/operations/:id/cancel', access: 'operator' },
  { method: 'POST', url: '/events', access: 'operator' },
  { method: 'POST', url: '/tasks/poll', access: 'operator' },
  { method: 'POST', url: '/tasks/:token/heartbeat', access: 'operator' },
  { method: 'POST', url: '/tasks/:token/complete', access: 'operator' },
  { method: 'POST', url: '/tasks/:token/fail', access: 'operator' },

  // Changing workflow definitions.
  { method: 'POST', url: '/workflows', access: 'editor' },
  { method: 'PUT', url: '/workflows/:id', access: 'editor' },
  { method: 'DELETE', url: '/workflows/:id', access: 'editor' },
  // Named limits: workflows' steps refer to them, so they change with the definitions.
  { method: 'PUT', url: '/limits/:name', access: 'editor' },
  { method: 'DELETE', url: '/limits/:name', access: 'editor' },

  // Key management.
  { method: 'POST', url: '/api-keys', access: 'admin' },
  { method: 'GET', url: '/api-keys', access: 'admin' },
  { method: 'DELETE', url: '/api-keys/:id', access: 'admin' },
];

/** What a request to an unknown route needs: a valid credential, then it gets its 404. */
export const UNMATCHED_ROUTE_ACCESS: Access = 'viewer';

/** `/tasks/:taskToken/complete` and `/tasks/:token/complete` are the same route shape. */
export function routeShape(url: string): string {
  return url.replace(/:[^/]+/g, ':');
}

function covers(policy: RoutePolicy, url: string): boolean {
  if (policy.url.endsWith('/*')) {
    const base = policy.url.slice(0, -2);
    return url.startsWith(`${base}/`);
  }
  return routeShape(policy.url) === routeShape(url);
}

/**
 * The entry governing `method url` (a Fastify route URL, not a request path), or undefined.
 * HEAD follows GET: Fastify answers HEAD with the GET handler.
 */
export function findPolicy(
  method: string,
  url: string,
  policies: readonly RoutePolicy[] = ROUTE_POLICIES,
): RoutePolicy | undefined {
  const wanted = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
  return policies.find((policy) => policy.method === wanted && covers(policy, url));
}

/** The access an entry grants under the current settings. */
export function effectiveAccess(
  policy: RoutePolicy,
  settings: { METRICS_PUBLIC: boolean },
): Access {
  if (policy.publicWhen !== undefined && settings[policy.publicWhen]) return 'public';
  return policy.access;
}
