import type { Role } from '../domain/roles.js';
import { ValidationFailedError } from '../errors.js';
import type { ApiKeyPage, ApiKeyStore, ApiKeyView } from '../store/api-key-store.js';
import { apiKeyId, apiKeyMatches, generateApiKey } from './api-key-format.js';

export interface CreatedApiKey extends ApiKeyView {
  /** The raw key: returned once, never stored. */
  key: string;
}

export interface VerifiedApiKey {
  id: string;
  name: string;
  role: Role;
}

/** API key use cases: create (the raw key is returned once), list, revoke, verify. */
export class ApiKeyService {
  constructor(
    private readonly store: () => ApiKeyStore,
    private readonly onTouchError: (error: unknown) => void = () => {},
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
  revoke(id: string): Promise<boolean> {
    return this.store().revoke(id);
  }

  /**
   * The key's identity when it is ours, active and unexpired; null otherwise, whatever the
   * reason. Database failures propagate (the caller answers 503, not 401).
   */
  async verify(key: string): Promise<VerifiedApiKey | null> {
    const id = apiKeyId(key);
    if (id === null) return null;
    const row = await this.store().findCredential(id);
    const matches = apiKeyMatches(key, row?.key_hash ?? null);
    if (!row || !matches || !row.usable) return null;
    if (row.touch_due) {
      // Bookkeeping only: a failed write must not fail an authenticated request.
      await this.store()
        .touch(row.id)
        .catch((error: unknown) => this.onTouchError(error));
    }
    return { id: row.id, name: row.name, role: row.role };
  }
}
