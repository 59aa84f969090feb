import type { Role } from '../domain/roles.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Queryable } from './db.js';

/** An API key as the API shows it: never its hash, never the key. */
export interface ApiKeyView {
  id: string;
  name: string;
  role: Role;
  status: 'active' | 'revoked' | 'expired';
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/** What verification needs: the stored hash and whether the key may be used now. */
export interface ApiKeyCredential {
  id: string;
  name: string;
  role: Role;
  key_hash: Buffer;
  usable: boolean;
  /** last_used_at is older than a minute (or unset): worth writing again. */
  touch_due: boolean;
}

export interface NewApiKey {
  id: string;
  name: string;
  role: Role;
  hash: Buffer;
  createdBy: string | null;
  expiresAt: Date | null;
}

export interface ApiKeyPage {
  items: ApiKeyView[];
  next_cursor: string | null;
}

interface RawApiKeyRow {
  id: string;
  name: string;
  role: Role;
  created_at: Date;
  created_by: string | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  expired: boolean;
}

const VIEW_COLUMNS = `id, name, role, created_at, created_by, expires_at, revoked_at, last_used_at,
  (expires_at IS NOT NULL AND expires_at <= NOW()) AS expired`;
const CURSOR_TIMESTAMP = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

function toView(row: RawApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    status: row.revoked_at !== null ? 'revoked' : row.expired ? 'expired' : 'active',
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    expires_at: row.expires_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
    last_used_at: row.last_used_at?.toISOString() ?? null,
  };
}

/** All SQL about API keys. */
export class ApiKeyStore {
  constructor(private readonly db: Queryable) {}

  async insert(key: NewApiKey): Promise<ApiKeyView> {
    const { rows } = await this.db.query<RawApiKeyRow>(
      `INSERT INTO api_keys (id, name, role, key_hash, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING ${VIEW_COLUMNS}`,
      [key.id, key.name, key.role, key.hash, key.createdBy, key.expiresAt],
    );
    const [row] = rows;
    if (!row) throw new Error('INSERT ... RETURNING returned no row');
    return toView(row);
  }

  /** The row a presented key names, judged by the database clock; null when unknown. */
  async findCredential(id: string): Promise<ApiKeyCredential | null> {
    const { rows } = await this.db.query<ApiKeyCredential>(
      `SELECT id, name, role, key_hash,
              revoked_at IS NULL AND (expires_at IS NULL OR expires_at > NOW()) AS usable,
              last_used_at IS NULL OR last_used_at < NOW() - INTERVAL '1 minute' AS touch_due
         FROM api_keys WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  async touch(id: string): Promise<void> {
    await this.db.query('UPDATE api_keys SET last_used_at = NOW() WHERE id = $1', [id]);
  }

  /** Newest first, keyset-paginated by (created_at, id). */
  async list(query: { limit: number; cursor?: string | undefined }): Promise<ApiKeyPage> {
    const params: unknown[] = [query.limit + 1];
    let where = '';
    if (query.cursor !== undefined) {
      const position = decodeCursor(query.cursor);
      params.push(position.createdAt, position.id);
      where = 'WHERE (created_at, id) < ($2::timestamptz, $3)';
    }
    const { rows } = await this.db.query<RawApiKeyRow & { cursor_ts: string }>(
      `SELECT ${VIEW_COLUMNS}, ${CURSOR_TIMESTAMP} AS cursor_ts
         FROM api_keys ${where}
        ORDER BY created_at DESC, id DESC
        LIMIT $1`,
      params,
    );
    const page = rows.slice(0, query.limit);
    const last = page.at(-1);
    return {
      items: page.map(toView),
      next_cursor:
        rows.length > query.limit && last
          ? encodeCursor({ createdAt: last.cursor_ts, id: last.id })
          : null,
    };
  }

  /** Revokes a key (idempotent: revoking again keeps the first time); false when unknown. */
  async revoke(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      'UPDATE api_keys SET revoked_at = COALESCE(revoked_at, NOW()) WHERE id = $1',
      [id],
    );
    return (rowCount ?? 0) > 0;
  }
}
