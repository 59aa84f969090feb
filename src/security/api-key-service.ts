import type { Role } from '../domain/roles.js';
import { ValidationFailedError } from '../errors.js';
import type { ApiKeyPage, ApiKeyStore, ApiKeyView } from '../store/api-key-store.js';
import { apiKeyId, apiKeyMatches, generateApiKey, hashApiKey } from './api-key-format.js';
import type { VerifiedApiKey, VerifiedKeyCache } from './verified-key-cache.js';

export type { VerifiedApiKey } from './verified-key-cache.js';

export interface CreatedApiKey extends ApiKeyView {
  /** The raw key: returned once, never stored. */
  key: string;
}

/** API key use cases: create (the raw key is returned once), list, revoke, verify. */
export class ApiKeyService {
  constructor(
    private readonly store: () => ApiKeyStore,
    private readonly onBookkeepingError: (error: unknown) => void = () => {},
    /** Verified keys recognised without a lookup; none: every verification looks up. */
    private readonly cache?: VerifiedKeyCache,
  ) {}

  /** Creates a key; `expiresAt` must lie in the future. */
  async create(input: {
    name: string;
    role: Role;
    expiresAt?: Date | null | undefined;
    createdBy?: string | null | undefined;
  }): Promise<CreatedApiKey> {
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && expiresAt.getTime() <= Date.now()) {
      throw new ValidationFailedError([
        { path: 'body.expires_at', message: 'must be in the future' },
      ]);
    }
    const generated = generateApiKey();
    const view = await this.store().insert({
      id: generated.id,
      name: input.name,
      role: input.role,
      hash: generated.hash,
      createdBy: input.createdBy ?? null,
      expiresAt,
    });
    return { ...view, key: generated.key };
  }

  list(query: { limit: number; cursor?: string | undefined }): Promise<ApiKeyPage> {
    return this.store().list(query);
  }

  /** False when no key has this id. */
  async revoke(id: string): Promise<boolean> {
    const revoked = await this.store().revoke(id);
    // Even for an unknown id: nothing may stay cached under it.
    await this.cache?.evict(id).catch((error: unknown) => this.onBookkeepingError(error));
    return revoked;
  }

  /**
   * The key's identity when it is ours, active and unexpired; null otherwise, whatever the
   * reason. Database failures propagate (the caller answers 503, not 401).
   */
  async verify(key: string): Promise<VerifiedApiKey | null> {
    const id = apiKeyId(key);
    if (id === null) return null;
    const hash = this.cache === undefined ? null : hashApiKey(key);
    const cached = hash === null ? null : await this.cache?.get(id, hash);
    if (cached) return cached;
    const row = await this.store().findCredential(id);
    const matches = apiKeyMatches(key, row?.key_hash ?? null);
    if (!row || !matches || !row.usable) return null;
    if (row.touch_due) {
      // Bookkeeping only: a failed write must not fail an authenticated request.
      await this.store()
        .touch(row.id)
        .catch((error: unknown) => this.onBookkeepingError(error));
    }
    const verified = { id: row.id, name: row.name, role: row.role };
    if (hash !== null) this.cache?.set(verified, hash);
    return verified;
  }
}
