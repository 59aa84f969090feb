import { describe, expect, it } from 'vitest';
import { delayStep } from '../../src/engine/steps/delay.js';
import { noopStep } from '../../src/engine/steps/noop.js';
import { builtInStepHandlers, getStepHandler } from '../../src/engine/steps/registry.js';
import { transformStep } from '../../src/engine/steps/transform.js';
import type { ExpressionContext, StepInvocation } from '../../src/engine/steps/types.js';
import { validateStep } from '../../src/engine/steps/validate.js';
import { failureOf } from '../helpers/steps.js';

const context: ExpressionContext = {
  input: { order: 'o-1', amount: 42 },
  steps: { prev: { output: { items: [1, 2, 3] }, status: 'completed' } },
  iteration: 0,
  execution: { id: 'exec-1', workflow_id: 'wf-1', workflow_version: 1 },
};

function invocation(config: Record<string, unknown>): StepInvocation {
  return {
    step: { id: 'step-1', type: 'test', agent_id: null },
    config,
    context,
    signal: new AbortController().signal,
    attempt: 1,
    env: { httpAllowedHosts: [], httpMaxResponseBytes: 1024, expressionTimeoutMs: 200 },
  };
}

describe('registry', () => {
  it('knows the built-in types and nothing else', () => {
    expect([...builtInStepHandlers.keys()].sort()).toEqual([
      'delay',
      'http',
      'noop',
      'subworkflow',
      'transform',
      'validate',
      'wait_for_event',
    ]);
    expect(getStepHandler('transform')).toBe(transformStep);
    // The seed's `validation` is an external task, not the built-in `validate`.
    expect(getStepHandler('validation')).toBeUndefined();
    expect(getStepHandler('storage')).toBeUndefined();
  });
});

describe('noop', () => {
  it('returns its resolved config', async () => {
    expect(await noopStep.run(invocation({ a: 1 }))).toEqual({
      kind: 'completed',
      output: { a: 1 },
    });
  });

  it('returns its input when the config is empty', async () => {
    expect(await noopStep.run(invocation({}))).toEqual({
      kind: 'completed',
      output: context.input,
    });
  });
});

describe('delay', () => {
  it('sleeps until a time in the future given in seconds', async () => {
    const before = Date.now();
    const outcome = await delayStep.run(invocation({ seconds: 60 }));
    expect(outcome.kind).toBe('sleep');
    if (outcome.kind !== 'sleep') return;
    expect(outcome.until.getTime()).toBeGreaterThanOrEqual(before + 60_000);
    expect(outcome.until.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('sleeps until an ISO date-time in the future', async () => {
    const until = new Date(Date.now() + 3_600_000).toISOString();
    expect(await delayStep.run(invocation({ until }))).toMatchObject({
      kind: 'sleep',
      until: new Date(until),
    });
  });

  it('completes once the time has passed, which is what the re-invocation sees', async () => {
    const until = '2020-01-01T00:00:00Z';
    expect(await delayStep.run(invocation({ until }))).toEqual({
      kind: 'completed',
      output: { slept_until: '2020-01-01T00:00:00.000Z' },
    });
    expect((await delayStep.run(invocation({ seconds: 0 }))).kind).toBe('completed');
  });

  it('completes a seconds delay when re-invoked after its sleep', async () => {
    const sleptUntil = new Date(Date.now() - 1);
    const resumed = { ...invocation({ seconds: 60 }), sleptUntil };
    expect(await delayStep.run(resumed)).toEqual({
      kind: 'completed',
      output: { slept_until: sleptUntil.toISOString() },
    });
  });

  it.each([
    [{}],
    [{ seconds: -1 }],
    [{ seconds: '10' }],
    [{ seconds: 1, until: '2030-01-01T00:00:00Z' }],
    [{ until: 'tomorrow' }],
    [{ until: '2030-01-01T00:00:00' }],
    [{ seconds: 1e300 }],
  ])('rejects %j as invalid_config, without retry', async (config) => {
    const failure = await failureOf(delayStep.run(invocation(config)));
    expect(failure.type).toBe('invalid_config');
    expect(failure.retryable).toBe(false);
  });
});

describe('transform', () => {
  it('evaluates the expression against the context', async () => {
    const outcome = await transformStep.run(
      invocation({ expression: '{"order": input.order, "total": $sum(steps.prev.output.items)}' }),
    );
    expect(outcome).toEqual({ kind: 'completed', output: { order: 'o-1', total: 6 } });
  });

  it('turns no match into null', async () => {
    expect(await transformStep.run(invocation({ expression: 'input.nothing' }))).toEqual({
      kind: 'completed',
      output: null,
    });
  });

  it('fails without retry on an expression error', async () => {
    const failure = await failureOf(transformStep.run(invocation({ expression: 'input.(' })));
    expect(failure).toMatchObject({ type: 'expression_error', retryable: false });
    const runtime = await failureOf(
      transformStep.run(invocation({ expression: 'input.order + 1' })),
    );
    expect(runtime).toMatchObject({ type: 'expression_error', retryable: false });
  });

  it('fails without retry when the expression runs past the time limit', async () => {
    const failure = await failureOf(
      transformStep.run(invocation({ expression: '($f := function($x){$f($x)}; $f(1))' })),
    );
    expect(failure).toMatchObject({ type: 'expression_error', retryable: false });
  });

  it('rejects a missing expression as invalid_config', async () => {
    const failure = await failureOf(transformStep.run(invocation({})));
    expect(failure).toMatchObject({ type: 'invalid_config', retryable: false });
  });
});

describe('validate', () => {
  const schema = {
    type: 'object',
    properties: {
      order: { type: 'string' },
      amount: { type: 'number', minimum: 0 },
      email: { type: 'string', format: 'email' },
    },
    required: ['order', 'amount'],
  };

  it('validates config.data', async () => {
    const data = { order: 'o-2', amount: 1, email: 'a@example.com' };
    expect(await validateStep.run(invocation({ schema, data }))).toEqual({
      kind: 'completed',
      output: { valid: true, data },
    });
  });

  it('validates the step input when config.data is absent', async () => {
    expect(await validateStep.run(invocation({ schema }))).toEqual({
      kind: 'completed',
      output: { valid: true, data: context.input },
    });
  });

  it('fails without retry, listing every problem', async () => {
    const failure = await failureOf(
      validateStep.run(invocation({ schema, data: { amount: -1, email: 'nope' } })),
    );
    expect(failure).toMatchObject({ type: 'validation_failed', retryable: false });
    const details = failure.details as { instancePath: string; message: string }[];
    expect(details.map((detail) => detail.instancePath).sort()).toEqual(['', '/amount', '/email']);
    expect(details.every((detail) => typeof detail.message === 'string')).toBe(true);
  });

  it('supports draft-07 schemas', async () => {
    const draft07 = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'array',
      items: [{ type: 'string' }],
      additionalItems: false,
    };
    expect((await validateStep.run(invocation({ schema: draft07, data: ['a'] }))).kind).toBe(
      'completed',
    );
    const failure = await failureOf(
      validateStep.run(invocation({ schema: draft07, data: ['a', 1] })),
    );
    expect(failure.type).toBe('validation_failed');
  });

  it('allows two different schemas with the same $id', async () => {
    const first = { $id: 'https://example.com/s.json', type: 'string' };
    const second = { $id: 'https://example.com/s.json', type: 'number' };
    expect((await validateStep.run(invocation({ schema: first, data: 'x' }))).kind).toBe(
      'completed',
    );
    expect((await validateStep.run(invocation({ schema: second, data: 1 }))).kind).toBe(
      'completed',
    );
  });

  it.each([
    [{ schema: 'data_schema.json' }],
    [{ schema: { type: 'nonsense' } }],
    [{ schema: { $ref: 'https://example.com/remote.json' } }],
    [{}],
  ])('rejects %j as invalid_config, without retry', async (config) => {
    const failure = await failureOf(validateStep.run(invocation(config)));
    expect(failure).toMatchObject({ type: 'invalid_config', retryable: false });
  });
});
