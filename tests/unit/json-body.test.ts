import { describe, expect, it } from 'vitest';
import { findExcessiveNesting } from '../../src/api/json-body.js';

const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

describe('findExcessiveNesting', () => {
  it('counts levels below the field, as the workflow validator does', () => {
    expect(findExcessiveNesting(`{"a":${nested(65)}}`, 64)).toBeNull();
    expect(findExcessiveNesting(`{"a":${nested(66)}}`, 64)).toBe('a');
    expect(findExcessiveNesting(nested(65), 64)).toBeNull();
    expect(findExcessiveNesting(nested(66), 64)).toBe('body');
  });

  it('names the field that holds the deep value', () => {
    const text = `{"ok":[1,{"b":2}],"deep":{"x":${nested(100)}},"after":1}`;
    expect(findExcessiveNesting(text, 64)).toBe('deep');
  });

  it('ignores brackets and escaped quotes inside strings', () => {
    const inString = JSON.stringify({ s: `\\"${'['.repeat(1000)}"{{{`, t: '\\' });
    expect(findExcessiveNesting(inString, 2)).toBeNull();
    expect(findExcessiveNesting(`{"k\\"[[[":${nested(5)}}`, 2)).toBe('k"[[[');
  });

  it('shortens a long field name and leaves malformed text to the parser', () => {
    const name = findExcessiveNesting(`{"${'k'.repeat(10_000)}":${nested(10)}}`, 2);
    expect(name?.length).toBeLessThanOrEqual(70);
    expect(findExcessiveNesting('{"open', 2)).toBeNull();
  });

  it('takes a million levels in one pass', () => {
    expect(findExcessiveNesting(nested(1_000_000), 64)).toBe('body');
  });
});
