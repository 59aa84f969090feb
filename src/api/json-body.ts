import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ValidationFailedError } from '../errors.js';

/**
 * How JSON request bodies are read: an empty body is no body, and nesting is bounded before
 * the text is parsed. Both happen in the content-type parser, so no handler, hook or error
 * path ever holds a value too deep to walk or stringify (recursive code overflows the stack
 * long before a 1 MB body of `[` runs out).
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The field a route's bodyLimit is really about, named by the 413 problem. */
    bodyField?: string;
  }
}

/**
 * Room around the one large field of a body (execute input, event data, task output): the
 * other fields of these bodies are short strings, so the body may exceed the field's own
 * limit by this much.
 */
export const BODY_ENVELOPE_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
/** Only whitespace: stops at the first other character, so it costs nothing on a real body. */
const BLANK = /^\s*$/;
/** Longest field name quoted back in a problem; a key can be as long as the body. */
const MAX_FIELD_NAME = 64;

/** Whether the quote at `index` is escaped: an odd run of backslashes precedes it. */
function isEscaped(text: string, index: number): boolean {
  let backslashes = 0;
  for (let at = index - 1; at >= 0 && text.charCodeAt(at) === BACKSLASH; at--) backslashes++;
  return backslashes % 2 === 1;
}

/** The end quote of the string literal opening at `start`, or -1 when it never closes. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  while (end !== -1 && isEscaped(text, end)) end = text.indexOf('"', end + 1);
  return end;
}

/** The name of a top-level field from its literal, short and printable. */
function fieldName(literal: string): string {
  if (literal.length <= MAX_FIELD_NAME + 2) {
    try {
      return String(JSON.parse(literal));
    } catch {
      // An invalid literal: the parser will refuse the body anyway; name it raw.
    }
  }
  return `${literal.slice(1, MAX_FIELD_NAME + 1)}…`;
}

/**
 * The top-level field of a JSON text whose value nests more than `maxDepth` levels below
 * itself (`body` when the text is not an object), or null. A single pass over the text that
 * counts brackets outside string literals: no recursion and no parse, so a body of a million
 * `[` costs one loop. Counted as the workflow validator counts: a field's own value is level
 * 0, so an object body may hold `maxDepth + 2` levels of brackets.
 */
export function findExcessiveNesting(text: string, maxDepth: number): string | null {
  let depth = 0;
  let objectBody = false;
  let lastKey = -1;
  let lastKeyEnd = -1;
  let field = 'body';
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (char === QUOTE) {
      const end = stringEnd(text, index);
      if (end === -1) return null;
      if (depth === 1) {
        lastKey = index;
        lastKeyEnd = end;
      }
      index = end;
    } else if (char === OPEN_BRACE || char === OPEN_BRACKET) {
      depth++;
      if (depth === 1) objectBody = char === OPEN_BRACE;
      if (depth > maxDepth + (objectBody ? 2 : 1)) return field;
    } else if (char === CLOSE_BRACE || char === CLOSE_BRACKET) {
      depth--;
    } else if (char === COLON && depth === 1 && objectBody && lastKey >= 0) {
      field = fieldName(text.slice(lastKey, lastKeyEnd + 1));
    }
  }
  return null;
}

/**
 * Replaces Fastify's JSON parser (for every route): an empty body with a JSON content type is
 * no body (many clients send the header on every request, body-less routes included), and a
 * body nested deeper than `maxDepth` is a 400 naming the field and the limit. Everything else
 * goes to Fastify's own parser, with its prototype-poisoning checks.
 */
export function useJsonBodyParser(app: FastifyInstance, maxDepth: number): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (request: FastifyRequest, body: string | Buffer, done) => {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (BLANK.test(text)) {
        done(null, undefined);
        return;
      }
      const field = findExcessiveNesting(text, maxDepth);
      if (field !== null) {
        done(
          new ValidationFailedError([
            {
              path: field,
              message: `is nested more than ${maxDepth} levels deep (MAX_JSON_DEPTH)`,
            },
          ]),
          undefined,
        );
        return;
      }
      void parse(request, text, done);
    },
  );
}

/** Refuses a field whose JSON is larger than `maxBytes` (a 400 naming it and the limit). */
export function checkFieldSize(
  value: unknown,
  field: string,
  maxBytes: number,
  limitName: string,
): void {
  if (value === undefined) return;
  // Bounded: the body limit caps the text and the parser its depth.
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  if (bytes > maxBytes) {
    throw new ValidationFailedError([
      { path: field, message: `must be at most ${maxBytes} bytes as JSON (${limitName})` },
    ]);
  }
}
