import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * How the service authenticates, derived from the environment (docs/ARCHITECTURE.md, "Security"). Kept
 * free of imports from config.ts so that config.ts can validate with it.
 *
 * - `none`: open; every caller acts as admin. Development and test only.
 * - `api-key`: `X-API-Key` (or `Authorization: Bearer wfk_...`) keys from the database.
 * - `jwt`: `Authorization: Bearer <JWT>` verified with JWT_SECRET or JWT_PUBLIC_KEY.
 * - `both`: either.
 */
export const AUTH_MODES = ['none', 'api-key', 'jwt', 'both'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** The settings this module reads; a structural subset of Config. */
export interface AuthSettingsInput {
  NODE_ENV: 'development' | 'production' | 'test';
  AUTH_MODE?: AuthMode | undefined;
  AUTH_DISABLED: boolean;
  JWT_SECRET?: string | undefined;
  JWT_PUBLIC_KEY?: string | undefined;
  JWT_ALGORITHMS?: JwtAlgorithm[] | undefined;
}

export interface SettingProblem {
  path: string;
  message: string;
}

/** The mode in force: AUTH_DISABLED, else AUTH_MODE, else `both` when a JWT key is set. */
export function resolveAuthMode(settings: AuthSettingsInput): AuthMode {
  if (settings.AUTH_DISABLED) return 'none';
  if (settings.AUTH_MODE !== undefined) return settings.AUTH_MODE;
  if (settings.JWT_SECRET !== undefined || settings.JWT_PUBLIC_KEY !== undefined) return 'both';
  return 'none';
}

export function jwtEnabled(mode: AuthMode): boolean {
  return mode === 'jwt' || mode === 'both';
}

export function apiKeysEnabled(mode: AuthMode): boolean {
  return mode === 'api-key' || mode === 'both';
}

/** PEM from the environment: literal `\n` sequences (one-line env files) become newlines. */
export function normalisePem(value: string): string {
  return value.includes('\\n') ? value.replaceAll('\\n', '\n') : value;
}

function publicKeyOf(pem: string): KeyObject | null {
  try {
    return createPublicKey(normalisePem(pem));
  } catch {
    return null;
  }
}

/** The algorithms a public key can verify: its family only, so no algorithm confusion. */
function algorithmsForKey(key: KeyObject): JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      if (curve === 'secp521r1') return ['ES512'];
      return [];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

/**
 * The pinned algorithms: JWT_ALGORITHMS, else HS256 for a secret, else the default of the
 * public key's type (RS256, ES256/384/512 by curve, EdDSA). Never `none`.
 */
export function jwtAlgorithms(settings: AuthSettingsInput): JwtAlgorithm[] {
  if (settings.JWT_ALGORITHMS !== undefined && settings.JWT_ALGORITHMS.length > 0) {
    return settings.JWT_ALGORITHMS;
  }
  if (settings.JWT_SECRET !== undefined) return ['HS256'];
  const key = settings.JWT_PUBLIC_KEY === undefined ? null : publicKeyOf(settings.JWT_PUBLIC_KEY);
  if (key === null) return [];
  const family = algorithmsForKey(key);
  return key.asymmetricKeyType === 'rsa' ? ['RS256'] : family.slice(0, 1);
}

/** Everything wrong with the authentication settings, each naming its variable. */
export function authProblems(settings: AuthSettingsInput): SettingProblem[] {
  const problems: SettingProblem[] = [];
  const production = settings.NODE_ENV === 'production';
  const hasSecret = settings.JWT_SECRET !== undefined;
  const hasPublicKey = settings.JWT_PUBLIC_KEY !== undefined;

  if (production && settings.AUTH_DISABLED) {
    problems.push({
      path: 'AUTH_DISABLED',
      message: 'authentication cannot be disabled in production (NODE_ENV=production)',
    });
  }
  if (production && settings.AUTH_MODE === 'none') {
    problems.push({
      path: 'AUTH_MODE',
      message: 'AUTH_MODE=none (no authentication) is refused in production',
    });
  }
  if (production && settings.AUTH_MODE === undefined && !hasSecret && !hasPublicKey) {
    for (const path of ['AUTH_MODE', 'JWT_SECRET', 'JWT_PUBLIC_KEY']) {
      problems.push({
        path,
        message:
          'production requires authentication: set AUTH_MODE=api-key (create the first key with `npm run api-key -- create --role admin --name ops`), or JWT_SECRET / JWT_PUBLIC_KEY (AUTH_MODE=jwt or both)',
      });
    }
  }
  if (hasSecret && hasPublicKey) {
    problems.push({
      path: 'JWT_PUBLIC_KEY',
      message: 'set JWT_SECRET (HS*) or JWT_PUBLIC_KEY (RS*/PS*/ES*/EdDSA), not both',
    });
  }
  const mode = resolveAuthMode(settings);
  if (jwtEnabled(mode) && !hasSecret && !hasPublicKey) {
    problems.push({
      path: 'AUTH_MODE',
      message: `AUTH_MODE=${mode} needs JWT_SECRET or JWT_PUBLIC_KEY`,
    });
  }
  const key = hasPublicKey ? publicKeyOf(settings.JWT_PUBLIC_KEY ?? '') : null;
  if (hasPublicKey && key === null) {
    problems.push({
      path: 'JWT_PUBLIC_KEY',
      message: 'is not a PEM public key (SPKI "-----BEGIN PUBLIC KEY-----" or a certificate)',
    });
  }
  if (key !== null && key.type !== 'public') {
    problems.push({ path: 'JWT_PUBLIC_KEY', message: 'must be a public key, not a private one' });
  }
  const chosen = settings.JWT_ALGORITHMS ?? [];
  if (hasSecret) {
    const wrong = chosen.filter((algorithm) => !algorithm.startsWith('HS'));
    if (wrong.length > 0) {
      problems.push({
        path: 'JWT_ALGORITHMS',
        message: `${wrong.join(', ')} cannot be verified with JWT_SECRET; use HS256, HS384 or HS512`,
      });
    }
  }
  if (key !== null) {
    const allowed = algorithmsForKey(key);
    if (allowed.length === 0) {
      problems.push({
        path: 'JWT_PUBLIC_KEY',
        message: `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}; use RSA, EC (P-256/384/521) or Ed25519`,
      });
    }
    const wrong = chosen.filter((algorithm) => !allowed.includes(algorithm));
    if (wrong.length > 0 && allowed.length > 0) {
      problems.push({
        path: 'JWT_ALGORITHMS',
        message: `${wrong.join(', ')} cannot be verified with this ${key.asymmetricKeyType} key; allowed: ${allowed.join(', ')}`,
      });
    }
  }
  return problems;
}
