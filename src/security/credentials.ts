import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { type Role, strongestRole } from '../domain/roles.js';
import { looksLikeApiKey } from './api-key-format.js';

/** Who is calling, once authenticated. */
export interface Caller {
  kind: 'anonymous' | 'api-key' | 'jwt';
  /** Key id, token subject, or `anonymous`: the rate-limit identity. */
  id: string;
  /** Null: authenticated but granted no role the service knows. */
  role: Role | null;
}

export interface Credential {
  kind: 'jwt' | 'api-key';
  value: string;
}

export type Extracted =
  | { kind: 'none' }
  | { kind: 'malformed' }
  | { kind: 'credential'; credential: Credential };

/** Longer than any sane JWT or key: refused before any parsing or lookup. */
const MAX_CREDENTIAL_LENGTH = 8192;
/** base64url JWT segments and our key alphabet; anything else cannot be valid. */
const TOKEN_CHARS = /^[A-Za-z0-9._~+/=-]+$/;

function clean(value: string): string | null {
  const trimmed = value.trim();
  return trimmed.length > 0 && trimmed.length <= MAX_CREDENTIAL_LENGTH && TOKEN_CHARS.test(trimmed)
    ? trimmed
    : null;
}

function bearerOf(token: string): Credential {
  return looksLikeApiKey(token) ? { kind: 'api-key', value: token } : { kind: 'jwt', value: token };
}

/**
 * Finds the one credential of a request: `Authorization: Bearer <JWT or wfk_ key>`,
 * `X-API-Key`, or, only where the route allows it, `?access_token=`. Two credentials at once
 * are refused as malformed rather than guessing which one counts.
 */
export function extractCredential(
  headers: IncomingHttpHeaders,
  query: unknown,
  allowQueryToken: boolean,
): Extracted {
  const found: Credential[] = [];
  const authorization = headers.authorization;
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(.+)$/i.exec(authorization);
    const token = match?.[1] === undefined ? null : clean(match[1]);
    if (token === null) return { kind: 'malformed' };
    found.push(bearerOf(token));
  }
  const apiKey = headers['x-api-key'];
  if (apiKey !== undefined) {
    const key = typeof apiKey === 'string' ? clean(apiKey) : null;
    if (key === null) return { kind: 'malformed' };
    found.push({ kind: 'api-key', value: key });
  }
  if (allowQueryToken && typeof query === 'object' && query !== null) {
    const token: unknown = (query as Record<string, unknown>).access_token;
    if (token !== undefined) {
      const value = typeof token === 'string' ? clean(token) : null;
      if (value === null) return { kind: 'malformed' };
      found.push(bearerOf(value));
    }
  }
  if (found.length === 0) return { kind: 'none' };
  const [credential] = found;
  if (found.length > 1 || credential === undefined) return { kind: 'malformed' };
  return { kind: 'credential', credential };
}

/**
 * The value of the roles claim: the claim named exactly (namespaced claims such as
 * `https://example.com/roles` contain dots), else a dotted path (`realm_access.roles`).
 */
export function claimValue(payload: Record<string, unknown>, claim: string): unknown {
  if (Object.hasOwn(payload, claim)) return payload[claim];
  let current: unknown = payload;
  for (const part of claim.split('.')) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, part)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** The strongest known role in a roles claim (an array, or a space/comma-separated string). */
export function roleFromClaim(value: unknown): Role | null {
  if (typeof value === 'string') return strongestRole(value.split(/[\s,]+/));
  if (Array.isArray(value)) return strongestRole(value);
  return null;
}

/** The caller a verified token stands for. */
export function jwtCaller(
  payload: Record<string, unknown>,
  rolesClaim: string,
  token: string,
): Caller {
  const subject = payload.sub;
  const id =
    typeof subject === 'string' && subject.length > 0
      ? subject.slice(0, 255)
      : // No subject: the token itself is the identity (hashed: never a credential in Redis).
        `token-${createHash('sha256').update(token).digest('hex').slice(0, 32)}`;
  return { kind: 'jwt', id, role: roleFromClaim(claimValue(payload, rolesClaim)) };
}
