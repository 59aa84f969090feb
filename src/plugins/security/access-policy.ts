import type { RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { problemResponse } from '../../schemas/problem.js';
import {
  type Access,
  effectiveAccess,
  findPolicy,
  ROUTE_POLICIES,
  type RoutePolicy,
} from '../../security/policy.js';

/** The access decided for a route at registration, kept in its config. */
export interface RouteAccess {
  access: Access;
  queryToken: boolean;
}

/** A registered route and the access it got: what the security tests iterate over. */
export interface RegisteredRouteAccess extends RouteAccess {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered so far with the access the policy table gave it. */
    routeAccess: RegisteredRouteAccess[];
  }
  interface FastifyContextConfig {
    routeAccess?: RouteAccess;
  }
}

/** OpenAPI security schemes, for @fastify/swagger's `components.securitySchemes`. */
export const SECURITY_SCHEMES = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT or wfk_ API key',
    description: 'A JWT (roles in its roles claim) or an API key',
  },
  apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key (wfk_...)' },
} as const;

function methodsOf(route: RouteOptions): string[] {
  return Array.isArray(route.method) ? [...route.method] : [route.method];
}

export function isRoleAccess(access: Access): access is Exclude<Access, 'probe' | 'public'> {
  return access !== 'probe' && access !== 'public';
}

/** Documents credentials and the 401/403/429 answers on protected routes that have a schema. */
function documentProtection(route: RouteOptions): void {
  const schema = route.schema;
  if (schema === undefined || schema.hide === true) return;
  const response = (schema.response ?? {}) as Record<string, unknown>;
  route.schema = {
    ...schema,
    security: [{ bearerAuth: [] }, { apiKey: [] }],
    response: {
      401: problemResponse('Missing, invalid, expired or revoked credentials'),
      403: problemResponse('The credentials do not grant the role this route needs'),
      429: problemResponse('Rate limit exceeded; see Retry-After'),
      ...response,
    },
  };
}

/** The one access of a route, from the policy table; throws for an uncovered or mixed route. */
function decideAccess(
  route: RouteOptions,
  config: Config,
  policies: readonly RoutePolicy[],
): RegisteredRouteAccess[] {
  const decided: RegisteredRouteAccess[] = [];
  for (const method of methodsOf(route)) {
    const policy = findPolicy(method, route.url, policies);
    if (policy === undefined) {
      throw new Error(
        `Route ${method} ${route.url} has no entry in the access policy table (src/security/policy.ts): add one with the least role that may call it`,
      );
    }
    const access = effectiveAccess(policy, config);
    if (decided.length > 0 && decided[0]?.access !== access) {
      throw new Error(
        `Route ${methodsOf(route).join('|')} ${route.url} mixes methods with different access; register them separately`,
      );
    }
    decided.push({ method, url: route.url, access, queryToken: policy.queryToken === true });
  }
  return decided;
}

/**
 * The route policy (docs/ARCHITECTURE.md, "Security"): an onRoute hook gives each route its
 * access from the one table in src/security/policy.ts, refuses a route the table does not
 * cover, and documents credentials in the OpenAPI schema of protected routes. Register it
 * before every route and before @fastify/swagger, which must see the documented schemas.
 */
export const accessPolicyPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    app.decorate('routeAccess', [] as RegisteredRouteAccess[]);
    app.addHook('onRoute', (route) => {
      const decided = decideAccess(route, config, ROUTE_POLICIES);
      app.routeAccess.push(...decided);
      const last = decided.at(-1);
      if (last === undefined) return;
      const routeAccess: RouteAccess = { access: last.access, queryToken: last.queryToken };
      route.config = { ...route.config, routeAccess };
      if (isRoleAccess(routeAccess.access)) documentProtection(route);
    });
  },
  { name: 'access-policy' },
);
