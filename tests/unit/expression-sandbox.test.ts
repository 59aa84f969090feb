import { afterAll, describe, expect, it } from 'vitest';
import {
  closeExpressionSandbox,
  ExpressionLimitError,
  needsSandbox,
  sandboxStats,
} from '../../src/engine/expression-sandbox/index.js';
import { evaluateCondition, evaluateExpression } from '../../src/engine/expressions.js';
import type { ExpressionContext } from '../../src/engine/steps/types.js';

const context: ExpressionContext = {
  input: { go: true, items: [{ qty: 2 }, { qty: 3 }] },
  steps: {},
  iteration: 0,
  execution: { id: 'exec-1', workflow_id: 'wf-1', workflow_version: 1 },
};
const options = { timeoutMs: 1000 };

/** Runs `work` while a main-thread heartbeat ticks; returns the largest gap between ticks. */
async function withHeartbeat(work: () => Promise<unknown>): Promise<number> {
  let last = Date.now();
  let largestGap = 0;
  const heartbeat = setInterval(() => {
    const now = Date.now();
    largestGap = Math.max(largestGap, now - last);
    last = now;
  }, 20);
  try {
    await work();
  } finally {
    clearInterval(heartbeat);
  }
  return Math.max(largestGap, Date.now() - last);
}

async function expectLimit(source: string, limit: string, timeoutMs = 1000): Promise<void> {
  const started = Date.now();
  let caught: unknown;
  const gap = await withHeartbeat(async () => {
    caught = await evaluateExpression(source, context, { timeoutMs }).catch((error) => error);
  });
  expect(caught).toBeInstanceOf(ExpressionLimitError);
  expect(caught).toMatchObject({ code: 'expression_limit', limit, source });
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(gap).toBeLessThan(1000);
}

afterAll(async () => {
  await closeExpressionSandbox();
  expect(sandboxStats().threads).toBe(0);
});

describe('needsSandbox', () => {
  it('keeps plain expressions in process', () => {
    for (const source of [
      'input.go = true',
      'input.items[qty > 2].qty',
      '{"a": [1, input.go], "b": input.x & "y"}',
      'input.go ? "yes" : "no"',
      'input.x in [1, 2] and not_a_function or $x',
      '[1..5]',
      'input.bad(',
    ]) {
      expect(needsSandbox(source), source).toBe(false);
    }
  });

  it('sends calls, regexes, sorts, transforms and lambdas to the sandbox', () => {
    for (const source of [
      '$boolean(input.go)',
      '$secret("TOKEN")',
      'input.name ~> /a+/',
      'input.items^(qty)',
      'input ~> |items|{"x": 1}|',
      'function($x){$x}',
      'input.items[$contains(name, "a")]',
    ]) {
      expect(needsSandbox(source), source).toBe(true);
    }
  });
});

describe('sandboxed evaluation', () => {
  it('never sends a plain expression to the pool', async () => {
    const before = sandboxStats().evaluations;
    expect(await evaluateCondition('input.go = true', context, options)).toBe(true);
    expect(await evaluateExpression('input.items[qty > 2].qty', context, options)).toBe(3);
    expect(sandboxStats().evaluations).toBe(before);
    expect(await evaluateExpression('$sum(input.items.qty)', context, options)).toBe(5);
    expect(sandboxStats().evaluations).toBe(before + 1);
  });

  it('keeps ordinary errors as ExpressionError with their jsonata code', async () => {
    await expect(evaluateExpression('$number("x") + "a"', context, options)).rejects.toMatchObject({
      name: 'ExpressionError',
      code: 'D3030',
    });
  });

  it('calls function bindings in the main thread', async () => {
    const result = await evaluateExpression('$secret("A") & "!"', context, {
      timeoutMs: 1000,
      bindings: { secret: (name: string) => `value-${name}` },
    });
    expect(result).toBe('value-A!');
  });

  it('stops a catastrophic regex by terminating its thread', async () => {
    await expectLimit('$contains($pad("", 4000, "a"), /a*a*b/)', 'time');
  });

  it('stops a huge string', async () => {
    await expectLimit('$length($pad("", 200000000))', 'memory');
  });

  it('refuses a range too large for the thread before building it', async () => {
    await expectLimit('$count([1..9000000])', 'memory');
  });

  it('stops an infinite recursion that grows memory', async () => {
    await expectLimit('($f := function($a){ $f($append($a, $a)) }; $f([1]))', 'memory', 20_000);
  });

  it('refuses a 50 MB result', async () => {
    await expectLimit('($s := $pad("", 50000, "x"); $map([1..1000], function(){ $s }))', 'output');
  });

  it('still answers after breaches', async () => {
    expect(await evaluateExpression('$uppercase("ok")', context, options)).toBe('OK');
  });
});
