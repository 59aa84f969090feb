import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import fastifyJwt from '@fastify/jwt';
import rateLimit from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { roleAtLeast } from '../domain/roles.js';
import {
  ForbiddenError,
  RateLimitedError,
  ResourceNotFoundError,
  UnauthenticatedError,
  ValidationFailedError,
} from '../errors.js';
import { problemResponse } from '../schemas/problem.js';
import { ApiKeyService } from '../security/api-key-service.js';
import {
  type AuthMode,
  apiKeysEnabled,
  jwtAlgorithms,
  jwtEnabled,
  resolveAuthMode,
} from '../security/auth-settings.js';
import {
  type Caller,
  type Credential,
  extractCredential,
  jwtCaller,
} from '../security/credentials.js';
import { findUnstorableText } from '../security/input-guard.js';
import {
  type Access,
  effectiveAccess,
  findPolicy,
  ROUTE_POLICIES,
  type RoutePolicy,
  UNMATCHED_ROUTE_ACCESS,
} from '../security/policy.js';
import { sharedRedisStore } from '../security/rate-limit-store.js';
import { ApiKeyStore } from '../store/api-key-store.js';

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

export interface AuthInfo {
  mode: AuthMode;
  /** Every caller acts as admin: development or test without authentication. */
  open: boolean;
}

export interface RateLimitSettings {
  callerMax: number;
  ipMax: number;
  windowMs: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthInfo;
    apiKeys: ApiKeyService;
    /** Every route registered so far with the access the policy table gave it. */
    routeAccess: RegisteredRouteAccess[];
  }
  interface FastifyRequest {
    /** The authenticated caller; null before authentication and on probe/public routes. */
    caller: Caller | null;
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

const ANONYMOUS_ADMIN: Caller = { kind: 'anonymous', id: 'anonymous', role: 'admin' };
const CHALLENGE = 'Bearer realm="workflow-service"';

/** Limits in force; in tests the defaults are high so only tests that set limits meet them. */
export function rateLimitSettings(
  config: Pick<
    Config,
    'NODE_ENV' | 'RATE_LIMIT_MAX' | 'RATE_LIMIT_IP_MAX' | 'RATE_LIMIT_WINDOW_MS'
  >,
): RateLimitSettings {
  const test = config.NODE_ENV === 'test';
  return {
    callerMax: config.RATE_LIMIT_MAX ?? (test ? 1_000_000 : 1000),
    ipMax: config.RATE_LIMIT_IP_MAX ?? (test ? 1_000_000 : 100),
    windowMs: config.RATE_LIMIT_WINDOW_MS,
  };
}

function methodsOf(route: RouteOptions): string[] {
  return Array.isArray(route.method) ? [...route.method] : [route.method];
}

function isRoleAccess(access: Access): access is Exclude<Access, 'probe' | 'public'> {
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

/**
 * Authentication (JWT and API keys), role checks from the one policy table, per-caller and
 * per-IP rate limits in Redis, security headers and CORS (DESIGN.md section 7).
 *
 * Register it before every route (right after the error handler): its onRoute hook gives each
 * route its access and refuses a route the policy table does not cover. It reads app.pg
 * lazily, so it may be registered before the infrastructure plugin.
 */
export const securityPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const mode = resolveAuthMode(config);
    const limits = rateLimitSettings(config);
    const policies: readonly RoutePolicy[] = ROUTE_POLICIES;

    app.decorate('auth', { mode, open: mode === 'none' });
    app.decorate(
      'apiKeys',
      new ApiKeyService(
        // app.pg is decorated by the infrastructure plugin, registered after this one.
        (() => {
          let store: ApiKeyStore | undefined;
          return () => {
            store ??= new ApiKeyStore(app.pg);
            return store;
          };
        })(),
        (error) => app.log.warn({ err: error }, 'could not record the API key use'),
      ),
    );
    app.decorate('routeAccess', [] as RegisteredRouteAccess[]);
    app.decorateRequest('caller', null);

    app.addHook('onRoute', (route) => {
      let decided: RouteAccess | undefined;
      for (const method of methodsOf(route)) {
        const policy = findPolicy(method, route.url, policies);
        if (policy === undefined) {
          throw new Error(
            `Route ${method} ${route.url} has no entry in the access policy table (src/security/policy.ts): add one with the least role that may call it`,
          );
        }
        const access: RouteAccess = {
          access: effectiveAccess(policy, config),
          queryToken: policy.queryToken === true,
        };
        if (decided !== undefined && decided.access !== access.access) {
          throw new Error(
            `Route ${methodsOf(route).join('|')} ${route.url} mixes methods with different access; register them separately`,
          );
        }
        decided = access;
        app.routeAccess.push({ method, url: route.url, ...access });
      }
      if (decided === undefined) return;
      route.config = { ...route.config, routeAccess: decided };
      if (isRoleAccess(decided.access)) documentProtection(route);
    });

    if (mode === 'none') {
      app.log.warn(
        { auth_mode: mode, node_env: config.NODE_ENV },
        'AUTHENTICATION IS OFF: every caller acts as admin. Set AUTH_MODE=api-key|jwt|both (and JWT_SECRET or JWT_PUBLIC_KEY for JWTs) to require credentials; production refuses to start without them',
      );
    }

    // Headers first, so every answer (401 and 429 included) carries them.
    await app.register(helmet, {
      contentSecurityPolicy: {
        // Deployments on plain HTTP inside a cluster must still load the docs' assets.
        directives: { 'upgrade-insecure-requests': null },
      },
    });
    if (config.CORS_ORIGINS.length > 0) {
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
    }

    let verifyJwt: ((token: string) => Record<string, unknown>) | undefined;
    if (jwtEnabled(mode)) {
      const key = config.JWT_SECRET ?? config.JWT_PUBLIC_KEY;
      if (key === undefined)
        throw new Error('JWT authentication needs JWT_SECRET or JWT_PUBLIC_KEY');
      await app.register(fastifyJwt, {
        secret: config.JWT_SECRET ?? { public: key },
        verify: {
          algorithms: jwtAlgorithms(config),
          // fast-jwt checks iss/aud only when present: configured ones must be required too.
          requiredClaims: [
            'exp',
            ...(config.JWT_ISSUER === undefined ? [] : ['iss']),
            ...(config.JWT_AUDIENCE === undefined || config.JWT_AUDIENCE.length === 0
              ? []
              : ['aud']),
          ],
          clockTolerance: config.JWT_CLOCK_TOLERANCE_SECONDS * 1000,
          ...(config.JWT_ISSUER === undefined ? {} : { allowedIss: config.JWT_ISSUER }),
          ...(config.JWT_AUDIENCE === undefined || config.JWT_AUDIENCE.length === 0
            ? {}
            : { allowedAud: config.JWT_AUDIENCE }),
          cache: 1000,
        },
      });
      verifyJwt = (token) => app.jwt.verify<Record<string, unknown>>(token);
    }

    // Counters live in Redis so every process shares them (app.redis, found at request time).
    const keys = new WeakMap<FastifyRequest, string>();
    await app.register(rateLimit, {
      global: false,
      store: sharedRedisStore(() => app.redis, `${config.REDIS_PREFIX}:ratelimit:`),
      timeWindow: limits.windowMs,
      max: (_request, key) => (key.startsWith('ip:') ? limits.ipMax : limits.callerMax),
      keyGenerator: (request) => keys.get(request) ?? `ip:${request.ip}`,
      // Redis away: serve rather than refuse legitimate callers (authentication still holds).
      skipOnError: true,
    });
    const limiter = app.createRateLimit();

    /** Counts the request against `key` (or only reads the counter); 429 when over. */
    async function limit(
      request: FastifyRequest,
      reply: FastifyReply,
      key: string,
      increment = true,
    ): Promise<void> {
      keys.set(request, key);
      const state = await limiter(request, { increment });
      if (state.isAllowed) return;
      const resetSeconds = Math.max(1, state.ttlInSeconds);
      if (state.isExceeded) {
        reply.header('ratelimit-limit', state.max);
        reply.header('ratelimit-remaining', 0);
        reply.header('ratelimit-reset', resetSeconds);
        reply.header('retry-after', resetSeconds);
        throw new RateLimitedError(String(resetSeconds));
      }
      // ttl 0: Redis did not answer (skipOnError) and nothing was counted; claim no numbers.
      if (increment && state.ttl > 0) {
        reply.header('ratelimit-limit', state.max);
        reply.header('ratelimit-remaining', state.remaining);
        reply.header('ratelimit-reset', resetSeconds);
      }
    }

    async function authenticate(credential: Credential): Promise<Caller | null> {
      if (credential.kind === 'jwt') {
        if (verifyJwt === undefined) return null;
        let payload: Record<string, unknown>;
        try {
          payload = verifyJwt(credential.value);
        } catch {
          return null;
        }
        return jwtCaller(payload, config.JWT_ROLES_CLAIM, credential.value);
      }
      if (!apiKeysEnabled(mode)) return null;
      const key = await app.apiKeys.verify(credential.value);
      return key === null ? null : { kind: 'api-key', id: key.id, role: key.role };
    }

    // Input sanitisation on every route: text Postgres cannot store never reaches it. In a path
    // it cannot be part of any id (404, as for any unknown id); elsewhere it is a 400.
    app.addHook('preValidation', async (request) => {
      if (findUnstorableText(request.params, 'params').length > 0) {
        throw new ResourceNotFoundError(request.url.split('?')[0]);
      }
      const problems = [
        ...findUnstorableText(request.query, 'querystring'),
        ...findUnstorableText(request.body, ''),
      ];
      if (problems.length > 0) throw new ValidationFailedError(problems.slice(0, 1));
    });

    app.addHook('onRequest', async (request, reply) => {
      const routeAccess = request.routeOptions.config.routeAccess;
      const access = routeAccess?.access ?? UNMATCHED_ROUTE_ACCESS;
      if (access === 'probe') return;
      const ip = request.ip;
      if (access === 'public' || mode === 'none') {
        if (access !== 'public') request.caller = ANONYMOUS_ADMIN;
        await limit(request, reply, `anon:${ip}`);
        return;
      }

      const ipKey = `ip:${ip}`;
      const extracted = extractCredential(
        request.headers,
        request.query,
        routeAccess?.queryToken === true,
      );
      let caller: Caller | null = null;
      if (extracted.kind === 'credential') {
        // An API key costs a database lookup: an address that has used up its failures is
        // refused before it, so a guessing client cannot make the service look up without bound.
        // A JWT is verified in memory, so a valid token from a busy address still passes.
        if (extracted.credential.kind === 'api-key') await limit(request, reply, ipKey, false);
        caller = await authenticate(extracted.credential);
        if (routeAccess?.queryToken === true) {
          // Consumed here: the route's own (closed) query schema must not see it.
          delete (request.query as Record<string, unknown>).access_token;
        }
      }
      if (caller === null) {
        await limit(request, reply, ipKey);
        reply.header('www-authenticate', CHALLENGE);
        throw new UnauthenticatedError();
      }
      request.caller = caller;
      await limit(request, reply, `caller:${caller.kind}:${caller.id}`);
      if (!roleAtLeast(caller.role, access)) {
        throw new ForbiddenError(access, caller.role ?? 'no role');
      }
    });
  },
  { name: 'security' },
);
