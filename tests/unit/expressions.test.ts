import { describe, expect, it } from 'vitest';
import {
  checkExpression,
  compileExpression,
  ExpressionError,
  evaluateCondition,
  evaluateExpression,
} from '../../src/engine/expressions.js';
import type { ExpressionContext } from '../../src/engine/steps/types.js';
import { findTemplateProblems, isTemplate, resolveTemplates } from '../../src/engine/templates.js';

const context: ExpressionContext = {
  input: {
    amount: 150,
    id: 'a1',
    items: [
      { sku: 'x', qty: 2 },
      { sku: 'y', qty: 3 },
    ],
  },
  steps: { fetch: { output: { token: 'secret' }, status: 'completed' } },
  iteration: 2,
  execution: { id: 'exec-1', workflow_id: 'wf-1', workflow_version: 3 },
};
const options = { timeoutMs: 1000 };
const INFINITE_RECURSION = '($f := function($x){$f($x)}; $f(1))';
const DEEP_RECURSION = '($f := function($x){ 1 + $f($x + 1) }; $f(1))';
const HUGE_LOOP = '[1..10000000].($ + 1)';

describe('evaluateExpression', () => {
  it('evaluates against the execution context', async () => {
    expect(await evaluateExpression('input.amount > 100', context, options)).toBe(true);
    expect(await evaluateExpression('$sum(input.items.qty)', context, options)).toBe(5);
    expect(await evaluateExpression('steps.fetch.output.token', context, options)).toBe('secret');
    expect(
      await evaluateExpression('execution.workflow_version + iteration', context, options),
    ).toBe(5);
  });

  it('returns plain JSON arrays without jsonata sequence markers', async () => {
    const result = await evaluateExpression('input.items.sku', context, options);
    expect(result).toEqual(['x', 'y']);
    expect(Object.keys(result as object)).toEqual(['0', '1']);
    expect(Object.hasOwn(result as object, 'sequence')).toBe(false);
  });

  it('keeps undefined for no match and drops function values', async () => {
    expect(await evaluateExpression('input.missing', context, options)).toBeUndefined();
    expect(await evaluateExpression('function($x){$x}', context, options)).toBeUndefined();
    expect(await evaluateExpression('{"f": function($x){$x}, "n": 1}', context, options)).toEqual({
      n: 1,
    });
  });

  it('exposes bindings as variables', async () => {
    const result = await evaluateExpression('$limit - input.amount', context, {
      timeoutMs: 1000,
      bindings: { limit: 200 },
    });
    expect(result).toBe(50);
  });

  it('reports evaluation errors as ExpressionError with position and code', async () => {
    const error = await evaluateExpression('input.amount + "x"', context, options).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ExpressionError);
    expect((error as ExpressionError).code).toBe('T2002');
    expect((error as ExpressionError).source).toBe('input.amount + "x"');
    expect(typeof (error as ExpressionError).position).toBe('number');
  });

  it('stops an infinite recursion at the time limit', async () => {
    await expect(
      evaluateExpression(INFINITE_RECURSION, context, { timeoutMs: 200 }),
    ).rejects.toBeInstanceOf(ExpressionError);
  });

  it('stops a non-tail recursion at the depth limit', async () => {
    await expect(
      evaluateExpression(DEEP_RECURSION, context, { timeoutMs: 5000 }),
    ).rejects.toMatchObject({ name: 'ExpressionError', code: 'D1011' });
  });

  it('stops a huge loop at the time limit', async () => {
    await expect(evaluateExpression(HUGE_LOOP, context, { timeoutMs: 200 })).rejects.toMatchObject({
      name: 'ExpressionError',
      code: 'D1012',
    });
  });

  it('stops a runaway expression hidden behind $eval', async () => {
    await expect(
      evaluateExpression(`$eval(${JSON.stringify(INFINITE_RECURSION)})`, context, {
        timeoutMs: 200,
      }),
    ).rejects.toMatchObject({ name: 'ExpressionError', code: 'D1012' });
  });

  it('keeps the limits of interleaved evaluations of one cached expression apart', async () => {
    const source = '$count([1..$n].($ * 2))';
    const runaway = evaluateExpression(source, context, {
      timeoutMs: 100,
      bindings: { n: 9_000_000 },
    });
    const quick = evaluateExpression(source, context, { timeoutMs: 10_000, bindings: { n: 5 } });
    const [slow, fast] = await Promise.allSettled([runaway, quick]);
    expect(slow.status).toBe('rejected');
    expect(fast).toEqual({ status: 'fulfilled', value: 5 });
  });

  it('evaluates the same cached expression concurrently with independent inputs', async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((amount) =>
        evaluateExpression('input.amount * 10', { ...context, input: { amount } }, options),
      ),
    );
    expect(results).toEqual([10, 20, 30, 40, 50]);
  });
});

describe('compileExpression and checkExpression', () => {
  it('caches compilations', () => {
    expect(compileExpression('input.id')).toBe(compileExpression('input.id'));
  });

  it('throws ExpressionError with the position of a syntax error', () => {
    const error = (() => {
      try {
        compileExpression('input.(');
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ExpressionError);
    expect((error as ExpressionError).position).toBe(7);
    expect((error as ExpressionError).source).toBe('input.(');
  });

  it('returns a message for bad syntax and null for good syntax', () => {
    expect(checkExpression('input.amount > 100')).toBeNull();
    expect(checkExpression('input.(')).toMatch(/position 7/);
    expect(checkExpression('a b')).toMatch(/Syntax error/);
    expect(checkExpression('')).toMatch(/Unexpected end/);
  });
});

describe('evaluateCondition', () => {
  it.each([
    ['input.amount > 100', true],
    ['input.amount > 1000', false],
    ['input.missing', false],
    ['input.items', true],
    ['[]', false],
    ['""', false],
    ['0', false],
    ['{}', false],
    ['"yes"', true],
    ['[0, false, 1]', true],
    ['null', false],
  ])('%s is %s', async (source, expected) => {
    expect(await evaluateCondition(source, context, options)).toBe(expected);
  });
});

describe('templates', () => {
  it('recognises only strings that are wholly {% %}', () => {
    expect(isTemplate('{% input.id %}')).toBe(true);
    expect(isTemplate('{%input.id%}')).toBe(true);
    expect(isTemplate('id: {% input.id %}')).toBe(false);
    expect(isTemplate('{% input.id %} ')).toBe(false);
    expect(isTemplate('input.id')).toBe(false);
  });

  it('resolves templates deep in objects and arrays, leaving literals alone', async () => {
    const config = {
      url: "{% 'https://api.example/' & input.id %}",
      literal: 'input.id',
      partial: 'Bearer {% steps.fetch.output.token %}',
      amount: '{% input.amount %}',
      headers: { Authorization: "{% 'Bearer ' & steps.fetch.output.token %}" },
      list: ['{% input.items.sku %}', 7, null, '{% input.missing %}'],
      object: '{% {"n": iteration} %}',
      missing: '{% input.missing %}',
    };
    expect(await resolveTemplates(config, context, options)).toEqual({
      url: 'https://api.example/a1',
      literal: 'input.id',
      partial: 'Bearer {% steps.fetch.output.token %}',
      amount: 150,
      headers: { Authorization: 'Bearer secret' },
      list: [['x', 'y'], 7, null, null],
      object: { n: 2 },
    });
  });

  it('does not modify its argument', async () => {
    const config = { a: '{% input.amount %}' };
    await resolveTemplates(config, context, options);
    expect(config).toEqual({ a: '{% input.amount %}' });
  });

  it('names the path of the failing field', async () => {
    const config = { headers: { Authorization: '{% input.amount + "x" %}' } };
    const error = await resolveTemplates(config, context, {
      ...options,
      basePath: 'config',
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExpressionError);
    expect((error as ExpressionError).path).toBe('config.headers.Authorization');
    expect((error as ExpressionError).message).toMatch(/^config\.headers\.Authorization: /);
  });

  it('names array indexes and unusual keys in paths', async () => {
    const config = { items: [{ ok: 1 }, { 'x-y': '{% $error("boom") %}' }] };
    await expect(
      resolveTemplates(config, context, { ...options, basePath: 'config' }),
    ).rejects.toMatchObject({ path: 'config.items[1]["x-y"]' });
  });

  it('finds every template that does not parse', () => {
    const config = {
      ok: '{% input.id %}',
      bad: '{% input.( %}',
      nested: { list: ['literal {% input.( %}', '{% %}'] },
    };
    const problems = findTemplateProblems(config, 'steps[0].config');
    expect(problems.map((problem) => problem.path)).toEqual([
      'steps[0].config.bad',
      'steps[0].config.nested.list[1]',
    ]);
    expect(problems[0]?.message).toMatch(/Expected "\)"/);
    expect(findTemplateProblems({ a: ['{% 1 + 1 %}'] }, 'config')).toEqual([]);
  });
});
