import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { roleAtLeast } from '../../domain/roles.js';
import { ForbiddenError, UnauthenticatedError } from '../../errors.js';
import { ApiKeyService } from '../../security/api-key-service.js';
import {
  type AuthMode,
  apiKeysEnabled,
  jwtAlgorithms,
  jwtEnabled,
  resolveAuthMode,
} from '../../security/auth-settings.js';
import {
  type Caller,
  type Credential,
  extractCredential,
  jwtCaller,
} from '../../security/credentials.js';
import { UNMATCHED_ROUTE_ACCESS } from '../../security/policy.js';
import { redisVerifiedKeyCache } from '../../security/verified-key-cache.js';
import { ApiKeyStore } from '../../store/api-key-store.js';

export interface AuthInfo {
  mode: AuthMode;
  /** Every caller acts as admin: development or test without authentication. */
  open: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthInfo;
    apiKeys: ApiKeyService;
  }
  interface FastifyRequest {
    /** The authenticated caller; null before authentication and on probe/public routes. */
    caller: Caller | null;
  }
}

const ANONYMOUS_ADMIN: Caller = { kind: 'anonymous', id: 'anonymous', role: 'admin' };
const CHALLENGE = 'Bearer realm="workflow-service"';

/** @fastify/jwt options: pinned algorithms, `exp` always and configured `iss`/`aud` required. */
function jwtOptions(config: Config): FastifyJWTOptions {
  const key = config.JWT_SECRET ?? config.JWT_PUBLIC_KEY;
  if (key === undefined) throw new Error('JWT authentication needs JWT_SECRET or JWT_PUBLIC_KEY');
  const audience =
    config.JWT_AUDIENCE === undefined || config.JWT_AUDIENCE.length === 0
      ? undefined
      : config.JWT_AUDIENCE;
  return {
    secret: config.JWT_SECRET ?? { public: key },
    verify: {
      algorithms: jwtAlgorithms(config),
      // fast-jwt checks iss/aud only when present: configured ones must be required too.
      requiredClaims: [
        'exp',
        ...(config.JWT_ISSUER === undefined ? [] : ['iss']),
        ...(audience === undefined ? [] : ['aud']),
      ],
      clockTolerance: config.JWT_CLOCK_TOLERANCE_SECONDS * 1000,
      ...(config.JWT_ISSUER === undefined ? {} : { allowedIss: config.JWT_ISSUER }),
      ...(audience === undefined ? {} : { allowedAud: audience }),
      cache: 1000,
    },
  };
}

/**
 * The API key use cases on app.pg and app.redis, which the infrastructure plugin decorates
 * later; verified keys are cached in Redis so that valid ones are recognised without a lookup.
 */
function apiKeyService(app: FastifyInstance, config: Config): ApiKeyService {
  let store: ApiKeyStore | undefined;
  return new ApiKeyService(
    () => {
      store ??= new ApiKeyStore(app.pg);
      return store;
    },
    (error) =>
      app.log.warn({ err: error }, 'API key bookkeeping failed (last use or verified-key cache)'),
    redisVerifiedKeyCache(() => app.redis, `${config.REDIS_PREFIX}:apikeys:verified:`),
  );
}

/**
 * Authentication (docs/ARCHITECTURE.md, "Security"): JWTs and API keys, `request.caller`, the
 * role check of the route's policy and the per-caller and per-address budgets. It reads
 * app.pg and app.redis lazily, so it may be registered before the infrastructure plugin.
 */
export const authenticationPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const mode = resolveAuthMode(config);
    app.decorate('auth', { mode, open: mode === 'none' });
    app.decorate('apiKeys', apiKeyService(app, config));
    app.decorateRequest('caller', null);
    if (mode === 'none') {
      app.log.warn(
        { auth_mode: mode, node_env: config.NODE_ENV },
        'AUTHENTICATION IS OFF: every caller acts as admin. Set AUTH_MODE=api-key|jwt|both (and JWT_SECRET or JWT_PUBLIC_KEY for JWTs) to require credentials; production refuses to start without them',
      );
    }

    let verifyJwt: ((token: string) => Record<string, unknown>) | undefined;
    if (jwtEnabled(mode)) {
      await app.register(fastifyJwt, jwtOptions(config));
      verifyJwt = (token) => app.jwt.verify<Record<string, unknown>>(token);
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

    async function onRequest(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const routeAccess = request.routeOptions.config.routeAccess;
      const access = routeAccess?.access ?? UNMATCHED_ROUTE_ACCESS;
      if (access === 'probe') return;
      const limits = app.rateLimits;
      const ip = request.ip;
      if (access === 'public' || mode === 'none') {
        if (access !== 'public') request.caller = ANONYMOUS_ADMIN;
        await limits.consume(request, reply, `anon:${ip}`);
        return;
      }

      const ipKey = `ip:${ip}`;
      const queryToken = routeAccess?.queryToken === true;
      const extracted = extractCredential(request.headers, request.query, queryToken);
      let caller: Caller | null = null;
      if (extracted.kind === 'credential') {
        // Checked before the address's failure budget is consulted: a valid key (usually from
        // the verified-key cache) or JWT is never refused because others failed from its address.
        caller = await authenticate(extracted.credential);
        // Consumed here: the route's own (closed) query schema must not see it.
        if (queryToken) delete (request.query as Record<string, unknown>).access_token;
      }
      if (caller === null) {
        // Only failures count against the address: past its budget they get 429, not 401.
        await limits.consume(request, reply, ipKey);
        reply.header('www-authenticate', CHALLENGE);
        throw new UnauthenticatedError();
      }
      request.caller = caller;
      await limits.consume(request, reply, `caller:${caller.kind}:${caller.id}`);
      if (!roleAtLeast(caller.role, access)) {
        throw new ForbiddenError(access, caller.role ?? 'no role');
      }
    }

    app.addHook('onRequest', onRequest);
  },
  { name: 'authentication', dependencies: ['access-policy', 'rate-limits'] },
);
