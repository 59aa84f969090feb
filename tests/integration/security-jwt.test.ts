import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createKey, epoch, problemShape, signJwt, TEST_JWT_SECRET } from '../helpers/security.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';

/** Every JWT attack on the list answers the same 401; the genuine token is the control. */

const ISSUER = 'https://idp.test';
const AUDIENCE = 'workflow-service';
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();

const ctx = useTestApp({
  AUTH_MODE: 'jwt',
  // One line with `\n` escapes, as in an env file.
  JWT_PUBLIC_KEY: pem(rsa.publicKey).replaceAll('\n', '\\n'),
  JWT_ISSUER: ISSUER,
  JWT_AUDIENCE: `other-service, ${AUDIENCE}`,
});

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'alice', roles: ['viewer'], iss: ISSUER, aud: AUDIENCE, exp: epoch(600), ...extra };
}

/** A token signed with the service's own RS256 key: valid unless its claims say otherwise. */
function signedByRsa(payload: Record<string, unknown>): string {
  return signJwt(payload, { alg: 'RS256', privateKey: rsa.privateKey });
}

async function statusWith(app: FastifyInstance, token: string): Promise<number> {
  const response = await app.inject({
    method: 'GET',
    url: '/workflows',
    headers: { authorization: `Bearer ${token}` },
  });
  return response.statusCode;
}

describe('RS256 with issuer and audience', () => {
  const genuine = () => signedByRsa(claims());

  it('accepts the genuine token (control)', async () => {
    expect(await statusWith(ctx.app, genuine())).toBe(200);
  });

  it('refuses every forged, stale or malformed token with one identical 401', async () => {
    const [head, body] = genuine().split('.') as [string, string, string];
    const adminBody = Buffer.from(JSON.stringify(claims({ roles: ['admin'] }))).toString(
      'base64url',
    );
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const attacks: Record<string, string> = {
      'alg none': signJwt(claims(), { alg: 'none' }),
      'alg none, upper case': signJwt(claims(), { alg: 'none' }, { alg: 'NONE' }),
      'alg none keeping the genuine signature': `${signJwt(claims(), { alg: 'none' })}${genuine().split('.')[2]}`,
      'HS256 signed with the public key (algorithm confusion)': signJwt(claims(), {
        alg: 'HS256',
        secret: pem(rsa.publicKey),
      }),
      'HS256 signed with the DER public key': signJwt(claims(), {
        alg: 'HS256',
        secret: rsa.publicKey.export({ type: 'spki', format: 'der' }),
      }),
      'signed by another key': signJwt(claims(), { alg: 'RS256', privateKey: otherRsa.privateKey }),
      'embedded jwk of the attacker': signJwt(
        claims(),
        { alg: 'RS256', privateKey: attacker.privateKey },
        { jwk: attacker.publicKey.export({ format: 'jwk' }) },
      ),
      'payload tampered, signature kept': `${head}.${adminBody}.${genuine().split('.')[2]}`,
      'signature stripped': `${head}.${body}.`,
      'PS256 (not pinned)': signJwt(claims(), { alg: 'PS256', privateKey: rsa.privateKey }),
      expired: signJwt(claims({ exp: epoch(-3600) }), { alg: 'RS256', privateKey: rsa.privateKey }),
      'missing exp': signedByRsa(claims({ exp: undefined })),
      'exp not a number': signedByRsa(claims({ exp: 'tomorrow' })),
      'not yet valid (nbf)': signJwt(claims({ nbf: epoch(3600) }), {
        alg: 'RS256',
        privateKey: rsa.privateKey,
      }),
      'wrong issuer': signedByRsa(claims({ iss: 'https://evil.test' })),
      'missing issuer': signedByRsa(claims({ iss: undefined })),
      'wrong audience': signedByRsa(claims({ aud: 'billing' })),
      'missing audience': signedByRsa(claims({ aud: undefined })),
      'one segment': 'eyJhbGciOiJSUzI1NiJ9',
      'two segments': `${head}.${body}`,
      'four segments': `${genuine()}.x`,
      'not base64': '!!!.@@@.###',
      'header not JSON': `${Buffer.from('not json').toString('base64url')}.${body}.sig`,
      'ten kilobytes': `${head}.${'A'.repeat(10_000)}.sig`,
      'an API key where JWTs only are accepted': `wfk_0123456789abcdef_${'a'.repeat(43)}`,
    };
    const shapes = new Set<string>();
    const failures: string[] = [];
    for (const [name, token] of Object.entries(attacks)) {
      const response = await ctx.app.inject({
        method: 'GET',
        url: '/workflows',
        headers: { authorization: `Bearer ${token}` },
      });
      if (response.statusCode !== 401) failures.push(`${name}: ${response.statusCode}`);
      else shapes.add(JSON.stringify(problemShape(response.body)));
    }
    expect(failures).toEqual([]);
    expect(shapes.size).toBe(1);
  });

  it('takes roles from the roles claim: none known is 403, the strongest one counts', async () => {
    const sign = (roles: unknown) => signedByRsa(claims({ roles }));
    expect(await statusWith(ctx.app, sign(undefined))).toBe(403);
    expect(await statusWith(ctx.app, sign(['superuser']))).toBe(403);
    const create = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { authorization: `Bearer ${sign('viewer editor')}` },
      payload: {},
    });
    expect(create.statusCode).toBe(400); // allowed through, then the empty body is invalid
  });

  it('refuses API keys when AUTH_MODE=jwt', async () => {
    const { key } = await createKey(ctx.app, 'admin');
    const response = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { 'x-api-key': key },
    });
    expect(response.statusCode).toBe(401);
  });
});

describe('ES256 and HS256', () => {
  let es: FastifyInstance;
  let hs: FastifyInstance;
  beforeAll(async () => {
    es = await buildApp(
      loadConfig(
        testEnvironment(ctx.database, `${ctx.prefix}e`, {
          JWT_PUBLIC_KEY: pem(ec.publicKey),
          SERVICE_ROLE: 'api',
        }),
      ),
    );
    hs = await buildApp(
      loadConfig(
        testEnvironment(ctx.database, `${ctx.prefix}h`, {
          JWT_SECRET: TEST_JWT_SECRET,
          JWT_ROLES_CLAIM: 'realm_access.roles',
          SERVICE_ROLE: 'api',
        }),
      ),
    );
    await Promise.all([es.ready(), hs.ready()]);
  });
  afterAll(async () => {
    await Promise.all([es?.close(), hs?.close()]);
  });

  it('ES256: genuine passes; other keys and other algorithms do not', async () => {
    const payload = { sub: 'bob', roles: ['viewer'], exp: epoch(600) };
    expect(
      await statusWith(es, signJwt(payload, { alg: 'ES256', privateKey: ec.privateKey })),
    ).toBe(200);
    expect(
      await statusWith(es, signJwt(payload, { alg: 'ES256', privateKey: otherEc.privateKey })),
    ).toBe(401);
    expect(
      await statusWith(es, signJwt(payload, { alg: 'RS256', privateKey: rsa.privateKey })),
    ).toBe(401);
    expect(
      await statusWith(es, signJwt(payload, { alg: 'HS256', secret: pem(ec.publicKey) })),
    ).toBe(401);
  });

  it('HS256: the secret and the pinned algorithm only; roles from a nested claim', async () => {
    const payload = { sub: 'carol', realm_access: { roles: ['viewer'] }, exp: epoch(600) };
    expect(await statusWith(hs, signJwt(payload, { alg: 'HS256', secret: TEST_JWT_SECRET }))).toBe(
      200,
    );
    expect(
      await statusWith(hs, signJwt(payload, { alg: 'HS256', secret: `${TEST_JWT_SECRET}x` })),
    ).toBe(401);
    expect(await statusWith(hs, signJwt(payload, { alg: 'HS512', secret: TEST_JWT_SECRET }))).toBe(
      401,
    );
    expect(await statusWith(hs, signJwt(payload, { alg: 'none' }))).toBe(401);
    // Without AUTH_MODE, a JWT key means `both`: API keys work too.
    const { key } = await createKey(hs, 'viewer');
    const viaKey = await hs.inject({
      method: 'GET',
      url: '/workflows',
      headers: { 'x-api-key': key },
    });
    expect(viaKey.statusCode).toBe(200);
  });
});
