import { z } from 'zod';

/**
 * Building blocks of the API's request and response schemas. src/schemas sits below core:
 * the use cases type their views with these schemas, the routes validate and document with
 * them, so every shape is written once.
 */

export const timestamp = z.string().describe('ISO 8601 timestamp (UTC)');

export const jsonObject = z.record(z.string(), z.unknown());

/** `{ id }` path parameters of at most `max` characters. */
export function idParams(max = 255) {
  return z.object({ id: z.string().min(1).max(max) }).strict();
}

/** A keyset-paginated page: the items and an opaque cursor to the next page. */
export function pageOf<Item extends z.ZodType>(item: Item) {
  return z.object({
    items: z.array(item),
    next_cursor: z
      .string()
      .nullable()
      .describe('Pass as `cursor` for the next page; null on the last page'),
  });
}

/** A timestamp documented (and checked on the way out) as an RFC 3339 date-time. */
export const dateTime = z.iso.datetime().describe('ISO 8601 timestamp (UTC)');
