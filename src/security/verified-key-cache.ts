import { timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Role } from '../domain/roles.js';
import { isRole } from '../domain/roles.js';

export interface VerifiedApiKey {
  id: string;
  name: string;
  role: Role;
}

/**
 * A short positive cache of verified API keys, so a valid key is recognised without a database
 * lookup: a flood of bad keys (each one a lookup) cannot make valid callers slow, and the
 * per-address failure budget is never consulted for them. Only keys that verified are kept,
 * under their id with the SHA-256 of the whole key (never the key), for a few seconds.
 */
export interface VerifiedKeyCache {
  /** The key's identity when `hash` is the one cached under `id`; null on a miss or an error. */
  get(id: string, hash: Buffer): Promise<VerifiedApiKey | null>;
  /** Remembers a verified key; failures are ignored (the next request looks it up again). */
  set(key: VerifiedApiKey, hash: Buffer): void;
  /** Forgets a key at once (revocation). */
  evict(id: string): Promise<void>;
}

/**
 * How long a verified key is trusted without the database. Revocation through the service
 * evicts at once; a key revoked or expired otherwise (command line, SQL) is refused within this.
 */
export const VERIFIED_KEY_TTL_MS = 10_000;

const REVOKED = 'revoked';

interface CachedKey {
  hash: string;
  name: string;
  role: string;
}

function parse(text: string | null): CachedKey | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<CachedKey>;
    return typeof value.hash === 'string' &&
      typeof value.name === 'string' &&
      typeof value.role === 'string'
      ? { hash: value.hash, name: value.name, role: value.role }
      : null;
  } catch {
    return null;
  }
}

/** The cache in the service's shared Redis, so a revocation evicts it for every process. */
export function redisVerifiedKeyCache(redis: () => Redis, prefix: string): VerifiedKeyCache {
  const keyOf = (id: string) => `${prefix}${id}`;
  return {
    async get(id, hash) {
      let cached: CachedKey | null;
      try {
        cached = parse(await redis().get(keyOf(id)));
      } catch {
        return null;
      }
      if (cached === null || !isRole(cached.role)) return null;
      const stored = Buffer.from(cached.hash, 'hex');
      if (stored.length !== hash.length || !timingSafeEqual(stored, hash)) return null;
      return { id, name: cached.name, role: cached.role };
    },
    set(key, hash) {
      const value: CachedKey = { hash: hash.toString('hex'), name: key.name, role: key.role };
      try {
        redis()
          // NX: never over a revocation's tombstone (a lookup that raced the revocation).
          .set(keyOf(key.id), JSON.stringify(value), 'PX', VERIFIED_KEY_TTL_MS, 'NX')
          .catch(() => {});
      } catch {
        // No client (yet): the key is simply looked up again next time.
      }
    },
    async evict(id) {
      // A tombstone rather than a delete: a verification that read the row just before the
      // revocation committed cannot put the key back for the rest of the window.
      await redis().set(keyOf(id), REVOKED, 'PX', VERIFIED_KEY_TTL_MS);
    },
  };
}
