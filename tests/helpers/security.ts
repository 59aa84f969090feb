import { createHmac, type KeyObject, sign } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Role } from '../../src/domain/roles.js';

/** A 48-character HS256 secret for tests. */
export const TEST_JWT_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwx';

function segment(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString(
    'base64url',
  );
}

export type SigningKey =
  | { alg: 'HS256' | 'HS384' | 'HS512'; secret: string | Buffer }
  | { alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA'; privateKey: KeyObject }
  | { alg: 'none' };

/** Signs a JWT by hand (node:crypto), so tests can also forge what no library would sign. */
export function signJwt(
  payload: Record<string, unknown>,
  key: SigningKey,
  header: Record<string, unknown> = {},
): string {
  const head = segment({ alg: key.alg, typ: 'JWT', ...header });
  const body = segment(payload);
  const input = `${head}.${body}`;
  switch (key.alg) {
    case 'none':
      return `${input}.`;
    case 'HS256':
    case 'HS384':
    case 'HS512':
      return `${input}.${createHmac(`sha${key.alg.slice(2)}`, key.secret)
        .update(input)
        .digest('base64url')}`;
    case 'RS256':
      return `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`;
    case 'PS256':
      return `${input}.${sign('sha256', Buffer.from(input), { key: key.privateKey, padding: 6, saltLength: 32 }).toString('base64url')}`;
    case 'ES256':
      return `${input}.${sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    case 'EdDSA':
      return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
  }
}

/** Seconds since the epoch, `offset` seconds from now. */
export function epoch(offset = 0): number {
  return Math.floor(Date.now() / 1000) + offset;
}

/** An HS256 token for `role` that the test app (JWT_SECRET = TEST_JWT_SECRET) accepts. */
export function tokenFor(role: Role, extra: Record<string, unknown> = {}): string {
  return signJwt(
    { sub: `user-${role}`, roles: [role], exp: epoch(3600), iat: epoch(), ...extra },
    { alg: 'HS256', secret: TEST_JWT_SECRET },
  );
}

/** Creates an API key through the service's own use case (as the CLI does). */
export async function createKey(
  app: FastifyInstance,
  role: Role,
  name = `test-${role}`,
): Promise<{ id: string; key: string }> {
  const created = await app.apiKeys.create({ name, role });
  return { id: created.id, key: created.key };
}

/** Path parameters of a Fastify route URL replaced by a value no record has. */
export function concreteUrl(url: string, value = 'does-not-exist'): string {
  return url.replace(/:[^/]+/g, value).replace(/\*$/, 'x');
}

/** The problem body without what differs between any two requests. */
export function problemShape(body: string): Record<string, unknown> {
  const {
    request_id: _id,
    instance: _instance,
    ...rest
  } = JSON.parse(body) as Record<string, unknown>;
  return rest;
}

/** Until /health/ready answers 200: Redis is connected, so counters are exact from here on. */
export async function untilReady(call: () => Promise<number>): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await call()) === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('service did not become ready');
}
