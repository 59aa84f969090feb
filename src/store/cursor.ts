import { InvalidCursorError } from '../errors.js';

/** A keyset position in a list ordered by (created_at DESC, id DESC), opaque to clients. */
export interface Position {
  createdAt: string;
  id: string;
}

/** The form Postgres renders created_at in for cursors: UTC with microseconds. */
const TIMESTAMP_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.\d{6}Z$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/;
const MAX_ID_LENGTH = 255;

export function encodeCursor(position: Position): string {
  return Buffer.from(JSON.stringify({ c: position.createdAt, i: position.id })).toString(
    'base64url',
  );
}

/** A real calendar instant (no month 13, no 30 February): Postgres would refuse it with a 500. */
function isTimestamp(value: string): boolean {
  const match = TIMESTAMP_PATTERN.exec(value);
  if (!match) return false;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return (
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hour &&
    date.getUTCMinutes() === minute &&
    date.getUTCSeconds() === second
  );
}

export function decodeCursor(cursor: string): Position {
  // Node's base64 decoder skips characters outside the alphabet, so check the text first.
  if (BASE64URL_PATTERN.test(cursor)) {
    try {
      const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        const { c, i } = value as { c?: unknown; i?: unknown };
        if (
          typeof c === 'string' &&
          isTimestamp(c) &&
          typeof i === 'string' &&
          i.length > 0 &&
          i.length <= MAX_ID_LENGTH &&
          !i.includes('\u0000') &&
          // Only the exact text this service issues: no extra keys, spacing or padding.
          encodeCursor({ createdAt: c, id: i }) === cursor
        ) {
          return { createdAt: c, id: i };
        }
      }
    } catch {
      // fall through: any decoding failure is the same client error
    }
  }
  throw new InvalidCursorError('decode it from next_cursor of a previous page');
}

/**
 * Turns rows fetched with `limit + 1` into a page: the extra row only says that another page
 * exists, and the last row shown is where it starts.
 */
export function toPage<Row, Item>(
  rows: readonly Row[],
  limit: number,
  positionOf: (row: Row) => Position,
  view: (row: Row) => Item,
): { items: Item[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map(view),
    next_cursor: rows.length > limit && last ? encodeCursor(positionOf(last)) : null,
  };
}
