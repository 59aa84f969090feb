import { generateKeyPairSync } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { roleAtLeast, strongestRole } from '../../src/domain/roles.js';
import { redactSecrets } from '../../src/engine/secrets.js';
import { secretBindings } from '../../src/engine/steps/registry.js';
import type { ExpressionContext } from '../../src/engine/steps/types.js';
import { resolveTemplates } from '../../src/engine/templates.js';
import { loggerOptions } from '../../src/logger.js';
import { rateLimitSettings } from '../../src/plugins/security/rate-limits.js';
import {
  apiKeyId,
  apiKeyMatches,
  generateApiKey,
  hashApiKey,
} from '../../src/security/api-key-format.js';
import {
  type AuthSettingsInput,
  authProblems,
  jwtAlgorithms,
  resolveAuthMode,
} from '../../src/security/auth-settings.js';
import { claimValue, extractCredential, roleFromClaim } from '../../src/security/credentials.js';
import { findUnstorableText } from '../../src/security/input-guard.js';
import {
  effectiveAccess,
  findPolicy,
  ROUTE_POLICIES,
  routeShape,
} from '../../src/security/policy.js';

const base: AuthSettingsInput = { NODE_ENV: 'development', AUTH_DISABLED: false };
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();
const ecPem = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();
const SECRET = 's'.repeat(40);

describe('roles', () => {
  it('orders viewer < operator < editor < admin', () => {
    expect(roleAtLeast('admin', 'viewer')).toBe(true);
    expect(roleAtLeast('operator', 'editor')).toBe(false);
    expect(roleAtLeast(null, 'viewer')).toBe(false);
    expect(strongestRole(['viewer', 'root', 'editor', 7])).toBe('editor');
    expect(strongestRole(['__proto__', 'constructor'])).toBeNull();
  });
});

describe('policy table', () => {
  it('has one entry per method and URL', () => {
    const keys = ROUTE_POLICIES.map((policy) => `${policy.method} ${routeShape(policy.url)}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('matches by route shape, HEAD as GET, and prefixes for /*', () => {
    expect(findPolicy('POST', '/tasks/:taskToken/complete')?.access).toBe('operator');
    expect(findPolicy('HEAD', '/executions/:executionId')?.access).toBe('viewer');
    expect(findPolicy('GET', '/docs/static/*')?.access).toBe('public');
    expect(findPolicy('GET', '/ui/app.js')?.access).toBe('public');
    expect(findPolicy('GET', '/uix')).toBeUndefined();
    expect(findPolicy('PATCH', '/workflows/:id')).toBeUndefined();
    expect(findPolicy('GET', '/api-keys/:id')).toBeUndefined();
  });

  it('makes /metrics public only when METRICS_PUBLIC is on', () => {
    const metrics = findPolicy('GET', '/metrics');
    if (!metrics) throw new Error('no /metrics entry');
    expect(effectiveAccess(metrics, { METRICS_PUBLIC: false })).toBe('viewer');
    expect(effectiveAccess(metrics, { METRICS_PUBLIC: true })).toBe('public');
  });
});

describe('credentials', () => {
  it('finds exactly one credential, or refuses', () => {
    expect(extractCredential({}, {}, false)).toEqual({ kind: 'none' });
    expect(extractCredential({ authorization: 'Bearer abc.def.ghi' }, {}, false)).toEqual({
      kind: 'credential',
      credential: { kind: 'jwt', value: 'abc.def.ghi' },
    });
    expect(extractCredential({ authorization: 'bearer   wfk_x' }, {}, false)).toEqual({
      kind: 'credential',
      credential: { kind: 'api-key', value: 'wfk_x' },
    });
    expect(extractCredential({ 'x-api-key': 'wfk_y' }, {}, false)).toMatchObject({
      kind: 'credential',
    });
    expect(extractCredential({ authorization: 'Basic YTpi' }, {}, false).kind).toBe('malformed');
    expect(extractCredential({ authorization: 'Bearer a b' }, {}, false).kind).toBe('malformed');
    expect(extractCredential({ authorization: `Bearer ${'a'.repeat(9000)}` }, {}, false).kind).toBe(
      'malformed',
    );
    expect(extractCredential({ authorization: 'Bearer a', 'x-api-key': 'b' }, {}, false).kind).toBe(
      'malformed',
    );
    expect(extractCredential({}, { access_token: 'a.b.c' }, false)).toEqual({ kind: 'none' });
    expect(extractCredential({}, { access_token: 'a.b.c' }, true).kind).toBe('credential');
    expect(extractCredential({}, { access_token: ['a', 'b'] }, true).kind).toBe('malformed');
  });

  it('reads roles from plain, namespaced and nested claims', () => {
    expect(claimValue({ roles: ['viewer'] }, 'roles')).toEqual(['viewer']);
    expect(claimValue({ 'https://x.test/roles': 'admin' }, 'https://x.test/roles')).toBe('admin');
    expect(claimValue({ realm_access: { roles: ['editor'] } }, 'realm_access.roles')).toEqual([
      'editor',
    ]);
    expect(claimValue({ a: 1 }, 'constructor.prototype')).toBeUndefined();
    expect(roleFromClaim('viewer operator')).toBe('operator');
    expect(roleFromClaim(['viewer', 'admin'])).toBe('admin');
    expect(roleFromClaim({ admin: true })).toBeNull();
  });
});

describe('API key format', () => {
  it('generates prefixed high-entropy keys whose id part finds the row', () => {
    const { id, key, hash } = generateApiKey();
    expect(key).toMatch(/^wfk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(apiKeyId(key)).toBe(id);
    expect(hash).toEqual(hashApiKey(key));
    expect(apiKeyMatches(key, hash)).toBe(true);
    expect(apiKeyMatches(`${key.slice(0, -1)}x`, hash)).toBe(false);
    expect(apiKeyMatches(key, null)).toBe(false);
    expect(apiKeyMatches(key, Buffer.alloc(3))).toBe(false);
    expect(apiKeyId('wfk_nothex0000000000_abc')).toBeNull();
    expect(generateApiKey().key).not.toBe(key);
  });
});

describe('authentication settings', () => {
  it('derives the mode', () => {
    expect(resolveAuthMode(base)).toBe('none');
    expect(resolveAuthMode({ ...base, JWT_SECRET: SECRET })).toBe('both');
    expect(resolveAuthMode({ ...base, AUTH_MODE: 'api-key', JWT_SECRET: SECRET })).toBe('api-key');
    expect(resolveAuthMode({ ...base, AUTH_MODE: 'both', AUTH_DISABLED: true })).toBe('none');
  });

  it('pins algorithms by key type', () => {
    expect(jwtAlgorithms({ ...base, JWT_SECRET: SECRET })).toEqual(['HS256']);
    expect(jwtAlgorithms({ ...base, JWT_PUBLIC_KEY: rsaPem })).toEqual(['RS256']);
    expect(jwtAlgorithms({ ...base, JWT_PUBLIC_KEY: ecPem })).toEqual(['ES384']);
    expect(jwtAlgorithms({ ...base, JWT_SECRET: SECRET, JWT_ALGORITHMS: ['HS512'] })).toEqual([
      'HS512',
    ]);
  });

  it('refuses to run open in production and names the variables', () => {
    const production = { ...base, NODE_ENV: 'production' as const };
    expect(authProblems(production).map((problem) => problem.path)).toEqual([
      'AUTH_MODE',
      'JWT_SECRET',
      'JWT_PUBLIC_KEY',
    ]);
    expect(authProblems({ ...production, AUTH_MODE: 'none' })[0]?.path).toBe('AUTH_MODE');
    expect(
      authProblems({ ...production, AUTH_MODE: 'api-key', AUTH_DISABLED: true })[0]?.path,
    ).toBe('AUTH_DISABLED');
    expect(authProblems({ ...production, AUTH_MODE: 'api-key' })).toEqual([]);
    expect(authProblems({ ...production, JWT_PUBLIC_KEY: rsaPem })).toEqual([]);
  });

  it('refuses inconsistent JWT settings', () => {
    expect(authProblems({ ...base, AUTH_MODE: 'jwt' })[0]?.path).toBe('AUTH_MODE');
    expect(authProblems({ ...base, JWT_SECRET: SECRET, JWT_PUBLIC_KEY: rsaPem })[0]?.path).toBe(
      'JWT_PUBLIC_KEY',
    );
    expect(authProblems({ ...base, JWT_SECRET: SECRET, JWT_ALGORITHMS: ['RS256'] })[0]?.path).toBe(
      'JWT_ALGORITHMS',
    );
    expect(
      authProblems({ ...base, JWT_PUBLIC_KEY: rsaPem, JWT_ALGORITHMS: ['HS256'] })[0]?.path,
    ).toBe('JWT_ALGORITHMS');
    expect(
      authProblems({ ...base, JWT_PUBLIC_KEY: ecPem, JWT_ALGORITHMS: ['ES256'] })[0]?.path,
    ).toBe('JWT_ALGORITHMS');
    expect(authProblems({ ...base, JWT_PUBLIC_KEY: 'not a key' })[0]?.path).toBe('JWT_PUBLIC_KEY');
  });
});

describe('configuration', () => {
  it('stops a production start without authentication, naming the variables', () => {
    let error: unknown;
    try {
      loadConfig({ NODE_ENV: 'production' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = String((error as Error).message);
    for (const name of ['AUTH_MODE', 'JWT_SECRET', 'JWT_PUBLIC_KEY'])
      expect(message).toContain(name);
    expect(() => loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'api-key' })).not.toThrow();
    expect(() =>
      loadConfig({ NODE_ENV: 'production', AUTH_MODE: 'api-key', AUTH_DISABLED: 'true' }),
    ).toThrow(/AUTH_DISABLED/);
  });

  it('never prints a secret in a configuration error', () => {
    expect(() => loadConfig({ JWT_SECRET: 'too-short-but-secret' })).toThrow(
      /JWT_SECRET="\[redacted\]"/,
    );
    expect(() => loadConfig({ JWT_SECRET: 'too-short-but-secret' })).not.toThrow(/too-short/);
  });

  it('parses the security settings', () => {
    const config = loadConfig({
      JWT_PUBLIC_KEY: rsaPem.replaceAll('\n', '\\n'),
      JWT_AUDIENCE: 'a, b',
      CORS_ORIGINS: 'https://ops.example.com, http://localhost:5173',
      RATE_LIMIT_MAX: '50',
    });
    expect(config.JWT_PUBLIC_KEY).toBe(rsaPem);
    expect(config.JWT_AUDIENCE).toEqual(['a', 'b']);
    expect(config.CORS_ORIGINS).toEqual(['https://ops.example.com', 'http://localhost:5173']);
    expect(rateLimitSettings(config)).toEqual({ callerMax: 50, ipMax: 100, windowMs: 60_000 });
    expect(rateLimitSettings(loadConfig({ NODE_ENV: 'test' })).callerMax).toBeGreaterThanOrEqual(
      100_000,
    );
    expect(() => loadConfig({ CORS_ORIGINS: 'https://ops.example.com/path' })).toThrow(
      /CORS_ORIGINS/,
    );
    expect(() => loadConfig({ JWT_ALGORITHMS: 'none' })).toThrow(/JWT_ALGORITHMS/);
  });
});

describe('input guard', () => {
  it('finds NUL and unpaired surrogates in values and keys, at any depth', () => {
    expect(findUnstorableText({ a: ['ok', { b: 'x\u0000' }] }, '')).toEqual([
      { path: 'a[1].b', message: expect.stringContaining('NUL') },
    ]);
    expect(findUnstorableText({ 'k\ud800': 1 }, 'body')).toHaveLength(1);
    expect(findUnstorableText('\udc00', 'params.id')).toHaveLength(1);
    expect(findUnstorableText({ emoji: '🙂', sql: "' OR 1=1 --" }, 'body')).toEqual([]);
    let deep: unknown = 'x\u0000';
    for (let level = 0; level < 100_000; level++) deep = [deep];
    expect(findUnstorableText(deep, 'body')).toHaveLength(1);
  });
});

describe('logs', () => {
  it('redact credentials in headers and in access_token query parameters', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino(loggerOptions({ LOG_LEVEL: 'info' }), sink);
    logger.info(
      {
        req: { method: 'GET', url: '/executions/x/stream?a=1&access_token=SECRET1', headers: {} },
        headers: { authorization: 'Bearer SECRET2', 'x-api-key': 'SECRET3' },
        request: { query: { access_token: 'SECRET4' } },
      },
      'request',
    );
    const text = lines.join('');
    expect(text).toContain('access_token=[redacted]');
    for (const secret of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4'])
      expect(text).not.toContain(secret);
  });
});

describe('$secret() in step config', () => {
  const context: ExpressionContext = {
    input: {},
    steps: {},
    iteration: 0,
    execution: { id: 'ex', workflow_id: 'wf', workflow_version: 1 },
  };
  const env = { WF_SECRET_API_TOKEN: 'tok-123456', PATH: '/usr/bin', WF_SECRET_PATH: 'p-secret' };
  const resolve = (config: unknown, stepType: string) =>
    resolveTemplates(config, context, {
      timeoutMs: 1000,
      basePath: 'config',
      bindings: secretBindings(stepType, env),
    });

  it('resolves WF_SECRET_<NAME> in http step config', async () => {
    expect(
      await resolve(
        { headers: { authorization: "{% 'Bearer ' & $secret('API_TOKEN') %}" } },
        'http',
      ),
    ).toEqual({ headers: { authorization: 'Bearer tok-123456' } });
    expect(await resolve({ v: "{% $secret('path') %}" }, 'http')).toEqual({ v: 'p-secret' });
  });

  it('reads nothing but WF_SECRET_ variables and fails without echoing values', async () => {
    await expect(resolve({ v: "{% $secret('MISSING') %}" }, 'http')).rejects.toThrow(
      /WF_SECRET_MISSING is not set/,
    );
    await expect(resolve({ v: "{% $secret('../PATH') %}" }, 'http')).rejects.toThrow(
      /name must be/,
    );
    await expect(resolve({ v: "{% $secret('API_TOKEN') %}" }, 'noop')).rejects.toThrow(
      /only available in the config of http steps/,
    );
    await expect(resolve({ v: "{% $secret('API_TOKEN') %}" }, 'noop')).rejects.not.toThrow(
      /tok-123456/,
    );
  });

  it('redacts secret values from messages', () => {
    expect(redactSecrets('https://hooks.test/tok-123456/x', env)).toBe(
      'https://hooks.test/[secret]/x',
    );
    expect(redactSecrets('nothing here', env)).toBe('nothing here');
  });
});
