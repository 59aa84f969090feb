import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../src/config.js';
import { validateWorkflow, type WorkflowDraft } from '../../src/core/workflow-validator.js';
import type { ClaimedRun } from '../../src/domain/execution.js';
import { type StepDefinition, stepInputSchema } from '../../src/domain/workflow-definition.js';
import { runAttempt } from '../../src/engine/step-runner.js';
import { getStepHandler, registerStepType } from '../../src/engine/steps/registry.js';
import { defineStepType, StepFailure, type StepInvocation } from '../../src/engine/steps/types.js';
import { ValidationFailedError } from '../../src/errors.js';
import { stepRunRow } from '../helpers/rows.js';

/**
 * A step type is one file: this test declares a throwaway one, registers it, and checks that
 * the validator, the template resolver and the runner all follow its declarations.
 */

const limits = loadConfig({});
const SECRET = 'def-secret-9b7c1e5a';
const env = { httpAllowedHosts: [], httpMaxResponseBytes: 1024, expressionTimeoutMs: 1000 };
const seen: StepInvocation[] = [];

/** Echoes its resolved config, or fails quoting it, as a careless server would. */
function echoType(type: string, allowsSecrets: boolean) {
  return defineStepType({
    type,
    configSchema: z.looseObject({
      size: z.number({ error: 'must be a number of widgets' }).int().min(1),
      colour: z.enum(['red', 'blue'], { error: 'must be red or blue' }).optional(),
    }),
    expressionFields: ['rule'],
    allowsSecrets,
    runsInline: true,
    async run(invocation) {
      seen.push(invocation);
      if (invocation.config.fail === true) {
        throw new StepFailure(`remote said: ${JSON.stringify(invocation.config)}`, {
          type: 'widget_error',
          retryable: false,
          details: {
            echoed: invocation.config,
            url: `https://x.test/?k=${encodeURIComponent(String(invocation.config.token))}`,
          },
        });
      }
      return { kind: 'completed', output: { echoed: invocation.config } };
    },
  });
}

const disposers: Array<() => void> = [];

beforeAll(() => {
  process.env.WF_SECRET_WIDGET_TOKEN = SECRET;
  disposers.push(registerStepType(echoType('widget', true)));
  disposers.push(registerStepType(echoType('widget_public', false)));
});

afterAll(() => {
  delete process.env.WF_SECRET_WIDGET_TOKEN;
  for (const dispose of disposers) dispose();
});

function draftWith(stepType: string, config: Record<string, unknown>): WorkflowDraft {
  return {
    name: 'Widgets',
    workflow_type: 'sequential',
    config: {},
    metadata: {},
    tags: [],
    steps: [stepInputSchema.parse({ id: 'w', name: 'w', step_type: stepType, config })],
  };
}

function problemsOf(draft: WorkflowDraft): Array<{ path: string; message: string }> {
  try {
    validateWorkflow(draft, limits);
  } catch (error) {
    if (error instanceof ValidationFailedError) return error.errors;
    throw error;
  }
  return [];
}

function claimOf(step: StepDefinition): ClaimedRun {
  const now = new Date();
  return {
    ...stepRunRow({
      step_id: step.id,
      status: 'running',
      lease_id: 'lease',
      worker_id: 'w',
      heartbeat_at: now,
      deadline_at: new Date(now.getTime() + 10_000),
      queued_at: now,
      started_at: now,
    }),
    wait_kind: null,
    wait_spec: null,
    workflow_id: 'wf-1',
    workflow_version: 1,
    input_data: { n: 3 },
    priority: 5,
    concurrency_key: null,
    iteration_runs: [],
  };
}

async function attempt(stepType: string, config: Record<string, unknown>) {
  const [step] = validateWorkflow(draftWith(stepType, config), limits).steps;
  if (!step) throw new Error('no step');
  return runAttempt(step, claimOf(step), env, new AbortController().signal);
}

describe('a step type declared in one file', () => {
  it('is registered once, and its disposer removes it', () => {
    expect(getStepHandler('widget')?.runsInline).toBe(true);
    expect(() => registerStepType(echoType('widget', false))).toThrow(/already registered/);
    expect(() => registerStepType(echoType('http', false))).toThrow(/already registered/);
    const dispose = registerStepType(echoType('widget_gone', false));
    expect(getStepHandler('widget_gone')).toBeDefined();
    dispose();
    expect(getStepHandler('widget_gone')).toBeUndefined();
  });

  it('has its config schema enforced by validateWorkflow, with the field path', () => {
    expect(problemsOf(draftWith('widget', { size: 0, colour: 'green' }))).toEqual([
      { path: 'steps[0].config.size', message: expect.any(String) },
      { path: 'steps[0].config.colour', message: 'must be red or blue' },
    ]);
    expect(problemsOf(draftWith('widget', {}))).toEqual([
      { path: 'steps[0].config.size', message: 'must be a number of widgets' },
    ]);
    expect(problemsOf(draftWith('widget', { size: 2, colour: 'red', extra: true }))).toEqual([]);
    // A template stands for a value known only at run time: not judged when saved.
    expect(problemsOf(draftWith('widget', { size: '{% input.n %}' }))).toEqual([]);
    // An unknown type is an external task: any config goes.
    expect(problemsOf(draftWith('widget_unknown', { size: 'many' }))).toEqual([]);
  });

  it('has its expression fields checked for syntax', () => {
    expect(problemsOf(draftWith('widget', { size: 1, rule: 'input.n >' }))).toEqual([
      { path: 'steps[0].config.rule', message: expect.stringMatching(/^invalid expression: /) },
    ]);
    expect(problemsOf(draftWith('widget', { size: 1, rule: 42 }))).toEqual([
      { path: 'steps[0].config.rule', message: 'must be a JSONata expression string' },
    ]);
    expect(problemsOf(draftWith('widget', { size: 1, rule: 'input.n > 2' }))).toEqual([]);
    // The same field name means nothing to a type that does not declare it.
    expect(problemsOf(draftWith('widget_unknown', { rule: 'input.n >' }))).toEqual([]);
  });

  it('is run by the step runner with its templates resolved', async () => {
    const result = await attempt('widget', { size: '{% input.n %}', rule: 'x' });
    expect(result).toEqual({ kind: 'completed', output: { echoed: { size: 3, rule: 'x' } } });
    expect(seen.at(-1)?.step).toEqual({ id: 'w', type: 'widget', agent_id: null });
    expect(seen.at(-1)?.secrets).toEqual([]);
  });

  it('gets $secret() when it allows secrets, and never records the value', async () => {
    const config = { size: 1, token: "{% 'Bearer ' & $secret('widget_token') %}" };
    const result = await attempt('widget', config);
    expect(seen.at(-1)?.config.token).toBe(`Bearer ${SECRET}`);
    expect(seen.at(-1)?.secrets).toEqual([SECRET]);
    expect(result).toEqual({
      kind: 'completed',
      output: { echoed: { size: 1, token: 'Bearer [secret]' } },
    });

    const failed = await attempt('widget', { ...config, fail: true });
    expect(failed?.kind).toBe('failed');
    const text = JSON.stringify(failed);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(encodeURIComponent(SECRET));
    expect(text).toContain('[secret]');
  });

  it('is refused $secret() when it does not allow secrets', async () => {
    const calls = seen.length;
    const result = await attempt('widget_public', {
      size: 1,
      token: "{% $secret('widget_token') %}",
    });
    expect(result).toMatchObject({
      kind: 'failed',
      error: { type: 'expression_error', retryable: false },
    });
    if (result?.kind !== 'failed') return;
    expect(result.error.message).toMatch(/only available in the config of http, widget steps/);
    expect(JSON.stringify(result)).not.toContain(SECRET);
    expect(seen.length).toBe(calls);
  });
});

describe('the built-in types, declared the same way', () => {
  it('have their config rules enforced with the field path', () => {
    expect(problemsOf(draftWith('transform', {}))).toEqual([
      { path: 'steps[0].config.expression', message: 'is required for a transform step' },
    ]);
    expect(
      problemsOf(draftWith('http', { url: 'ftp://x.test/', expected_status: [200, 7] })),
    ).toEqual([
      { path: 'steps[0].config.url', message: 'must be an http: or https: URL' },
      { path: 'steps[0].config.expected_status[1]', message: 'must be an HTTP status code' },
    ]);
    expect(problemsOf(draftWith('delay', { seconds: 1, until: '2030-01-01T00:00:00Z' }))).toEqual([
      { path: 'steps[0].config', message: 'set exactly one of `seconds` and `until`' },
    ]);
    expect(problemsOf(draftWith('wait_for_event', { event: 'paid', match: '(' }))).toEqual([
      { path: 'steps[0].config.match', message: expect.stringMatching(/^invalid expression: /) },
    ]);
    expect(problemsOf(draftWith('http', { url: "{% 'https://x.test/' & input.id %}" }))).toEqual(
      [],
    );
  });
});
