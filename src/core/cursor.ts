import { InvalidCursorError } from '../errors.js';

/** A keyset position in a list ordered by (created_at DESC, id DESC), opaque to clients. */
export interface Position {
  createdAt: string;
  id: string;
}

export function encodeCursor(position: Position): string {
  return Buffer.from(JSON.stringify({ c: position.createdAt, i: position.id })).toString(
    'base64url',
  );
}

export function decodeCursor(cursor: string): Position {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as {
      c?: unknown;
      i?: unknown;
    };
    if (
      typeof value.c === 'string' &&
      typeof value.i === 'string' &&
      !Number.isNaN(Date.parse(value.c))
    ) {
      return { createdAt: value.c, id: value.i };
    }
  } catch {
    // fall through: any decoding failure is the same client error
  }
  throw new InvalidCursorError('decode it from next_cursor of a previous page');
}
