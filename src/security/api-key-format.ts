import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys look like `wfk_<16 hex: lookup id>_<43 base64url: 256 random bits>`. The
 * recognisable prefix lets secret scanners find leaked keys; the id part finds the row without
 * touching the secret; only a SHA-256 of the whole key is stored. A slow password hash is not
 * needed: the key is 256 bits of randomness, not something a person chose.
 */
export const API_KEY_PREFIX = 'wfk_';
const KEY_PATTERN = /^wfk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
/** The public id of a key (in URLs and lists) is `ak_` + its lookup part. */
const ID_PREFIX = 'ak_';

export interface GeneratedKey {
  id: string;
  key: string;
  hash: Buffer;
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function generateApiKey(): GeneratedKey {
  const lookup = randomBytes(8).toString('hex');
  const key = `${API_KEY_PREFIX}${lookup}_${randomBytes(32).toString('base64url')}`;
  return { id: `${ID_PREFIX}${lookup}`, key, hash: hashApiKey(key) };
}

/** The key's id when it is shaped like one of ours, else null (no database lookup needed). */
export function apiKeyId(key: string): string | null {
  const match = KEY_PATTERN.exec(key);
  return match ? `${ID_PREFIX}${match[1]}` : null;
}

export function looksLikeApiKey(value: string): boolean {
  return value.startsWith(API_KEY_PREFIX);
}

/** Hash of no real key: compared against when the id is unknown, so both paths do the same work. */
const DECOY_HASH = hashApiKey(`${API_KEY_PREFIX}decoy`);

/** Constant-time comparison of a presented key with a stored hash (or the decoy when none). */
export function apiKeyMatches(key: string, storedHash: Buffer | null): boolean {
  const presented = hashApiKey(key);
  const expected =
    storedHash !== null && storedHash.length === presented.length ? storedHash : null;
  const equal = timingSafeEqual(presented, expected ?? DECOY_HASH);
  return expected !== null && equal;
}
