import { describe, expect, it } from 'vitest';
import { InvalidCursorError } from '../../src/errors.js';
import { decodeCursor, encodeCursor, type Position } from '../../src/store/cursor.js';

const position: Position = {
  createdAt: '2024-05-17T08:09:10.123456Z',
  id: '0b6e1c5e-8f3a-4a59-9d55-5f0b2f3b7c11',
};

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function expectInvalid(cursor: string): void {
  let caught: unknown;
  try {
    decodeCursor(cursor);
  } catch (error) {
    caught = error;
  }
  expect(caught, cursor).toBeInstanceOf(InvalidCursorError);
  const error = caught as InstanceType<typeof InvalidCursorError>;
  expect(error.statusCode).toBe(400);
  expect(error.code).toBe('WF_ERR_INVALID_CURSOR');
}

describe('cursor', () => {
  it('round-trips a position', () => {
    const cursor = encodeCursor(position);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual(position);
  });

  it('round-trips ids with any printable characters', () => {
    for (const id of ['a', 'x'.repeat(255), 'ünïcode-✓', 'quote"and\\backslash', '42']) {
      const value = { createdAt: '1999-12-31T23:59:59.999999Z', id };
      expect(decodeCursor(encodeCursor(value))).toEqual(value);
    }
  });

  it('is opaque: the position is not readable as plain text', () => {
    expect(encodeCursor(position)).not.toContain(position.id);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'not a cursor'],
    ['non-base64 characters', '!!!***'],
    ['standard base64 padding', `${encodeCursor(position)}==`],
    ['a character outside the alphabet appended', `${encodeCursor(position)}!`],
    [
      'a character outside the alphabet inserted',
      `${encodeCursor(position).slice(0, 8)}*${encodeCursor(position).slice(8)}`,
    ],
    [
      'whitespace inside',
      `${encodeCursor(position).slice(0, 8)} ${encodeCursor(position).slice(8)}`,
    ],
    ['truncated', encodeCursor(position).slice(0, -6)],
    ['base64 of non-JSON', Buffer.from('hello world').toString('base64url')],
    ['JSON null', encode(null)],
    ['a JSON string', encode('2024-05-17T08:09:10.123456Z')],
    ['a JSON array', encode(['2024-05-17T08:09:10.123456Z', 'id'])],
    ['missing id', encode({ c: position.createdAt })],
    ['missing timestamp', encode({ i: position.id })],
    ['empty object', encode({})],
    ['a numeric id', encode({ c: position.createdAt, i: 42 })],
    ['an empty id', encode({ c: position.createdAt, i: '' })],
    ['an id with NUL', encode({ c: position.createdAt, i: 'a\u0000b' })],
    ['an overlong id', encode({ c: position.createdAt, i: 'x'.repeat(256) })],
    ['a numeric timestamp', encode({ c: 1715933350123, i: position.id })],
    ['a loose date', encode({ c: '1', i: position.id })],
    ['a date without microseconds', encode({ c: '2024-05-17T08:09:10.123Z', i: position.id })],
    ['month 13', encode({ c: '2024-13-01T00:00:00.000000Z', i: position.id })],
    ['30 February', encode({ c: '2024-02-30T00:00:00.000000Z', i: position.id })],
    ['hour 24', encode({ c: '2024-02-03T24:00:00.000000Z', i: position.id })],
    ['extra keys', encode({ c: position.createdAt, i: position.id, x: 1 })],
    ['reordered keys', encode({ i: position.id, c: position.createdAt })],
    [
      'spaced JSON',
      Buffer.from(`{ "c": "${position.createdAt}", "i": "${position.id}" }`).toString('base64url'),
    ],
  ])('rejects %s', (_label, cursor) => {
    expectInvalid(cursor);
  });

  it('accepts 29 February in a leap year', () => {
    const leap = { createdAt: '2024-02-29T00:00:00.000000Z', id: 'x' };
    expect(decodeCursor(encodeCursor(leap))).toEqual(leap);
    expectInvalid(encodeCursor({ createdAt: '2023-02-29T00:00:00.000000Z', id: 'x' }));
  });

  it('rejects every single-character tampering of a real cursor', () => {
    const cursor = encodeCursor(position);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    let accepted = 0;
    for (let index = 0; index < cursor.length; index += 1) {
      for (const character of ['!', '+', '/', '=', '.']) {
        expectInvalid(cursor.slice(0, index) + character + cursor.slice(index + 1));
      }
      // A valid base64url character may still decode to a valid position; it must then be a
      // well-formed one (never an exception other than InvalidCursorError).
      const replacement = alphabet[(alphabet.indexOf(cursor[index] as string) + 1) % 64];
      try {
        const decoded = decodeCursor(
          cursor.slice(0, index) + replacement + cursor.slice(index + 1),
        );
        expect(decoded.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
        accepted += 1;
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidCursorError);
      }
    }
    expect(accepted).toBeLessThan(cursor.length);
  });
});
