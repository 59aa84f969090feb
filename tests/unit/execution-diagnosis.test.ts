import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { diagnose, NO_WORKER_SECONDS } from '../../src/core/execution-diagnosis.js';
import { validateWorkflow } from '../../src/core/workflow-validator.js';
import type { StepRunRow } from '../../src/domain/execution.js';
import type { StepStatus } from '../../src/domain/statuses.js';
import { stepInputSchema } from '../../src/domain/workflow-definition.js';
import { stepRunRow } from '../helpers/rows.js';

/** The reasons the integration test cannot bring about on demand, from rows made up here. */

const now = new Date('2026-12-02T10:00:00Z');
const limits = loadConfig({});

function definition(config: Record<string, unknown> = {}) {
  return validateWorkflow(
    {
      name: 'w',
      workflow_type: 'parallel',
      config,
      metadata: {},
      tags: [],
      steps: ['a', 'b', 'c'].map((id) =>
        stepInputSchema.parse({ id, name: id, step_type: 'noop' }),
      ),
    },
    limits,
  );
}

let nextId = 1;
function run(stepId: string, status: StepStatus, extra: Partial<StepRunRow> = {}): StepRunRow {
  nextId += 1;
  return stepRunRow({
    id: nextId,
    step_id: stepId,
    status,
    created_at: now,
    updated_at: now,
    ...extra,
  });
}

const input = (runs: StepRunRow[], config: Record<string, unknown> = {}) => ({
  execution: { id: 'ex-1', status: 'running' as const, concurrency_key: null, priority: 5 },
  definition: definition(config),
  runs,
  fanOuts: new Map(),
  polls: new Map<string, Date>(),
  now,
});

describe('diagnose', () => {
  it('tells a queued run waiting for a worker slot from a ready one waiting to be decided', () => {
    const queuedAt = new Date(now.getTime() - 5000);
    const answer = diagnose(
      input([
        run('a', 'queued', { queued_at: queuedAt }),
        run('b', 'pending'),
        run('c', 'running'),
      ]),
    );
    expect(answer.steps.map((step) => [step.step_id, step.blocked_by])).toEqual([
      ['a', { kind: 'worker_capacity', since: queuedAt.toISOString() }],
      ['b', { kind: 'worker_capacity', since: null }],
      ['c', null],
    ]);
    expect(answer.summary).toBe('running: c');
  });

  it("names the workflow's max_concurrency when it holds a ready step", () => {
    const answer = diagnose(
      input([run('a', 'running'), run('b', 'pending'), run('c', 'pending')], {
        max_concurrency: 1,
      }),
    );
    expect(answer.steps.find((step) => step.step_id === 'b')?.blocked_by).toEqual({
      kind: 'concurrency',
      limit: 'max_concurrency',
      in_use: 1,
      max: 1,
      waiting: 2,
    });
  });

  it('names the sub-workflow execution a run waits for', () => {
    const child = run('c', 'waiting', {
      wait_kind: 'child',
      wait_spec: { workflow_id: 'wf-child', execution_id: 'ex-child' },
    } as Partial<StepRunRow>);
    const answer = diagnose(input([run('a', 'completed'), run('b', 'completed'), child]));
    expect(answer.steps).toEqual([
      {
        step_id: 'c',
        iteration: 0,
        status: 'waiting',
        blocked_by: { kind: 'sub_workflow', execution_id: 'ex-child' },
        summary: 'waits for its sub-workflow execution ex-child',
      },
    ]);
    expect(answer.summary).toBe(
      'nothing runs now: c waits for its sub-workflow execution ex-child',
    );
  });

  it(`counts a poll for every step type, and forgets one older than ${NO_WORKER_SECONDS} s`, () => {
    const task = run('a', 'waiting', {
      wait_kind: 'task',
      wait_spec: { step_type: 'ocr', agent_id: null, config: {}, input: {}, lease_seconds: 60 },
    } as Partial<StepRunRow>);
    const recent = new Date(now.getTime() - 1000);
    const old = new Date(now.getTime() - (NO_WORKER_SECONDS + 1) * 1000);
    const reason = (polls: Map<string, Date>) =>
      diagnose({ ...input([task]), polls }).steps[0]?.blocked_by;
    expect(reason(new Map([['*', recent]]))).toMatchObject({ no_worker: false });
    expect(reason(new Map([['ocr', old]]))).toMatchObject({
      no_worker: true,
      last_poll_at: old.toISOString(),
    });
  });

  it('puts a queued step behind steps of higher priority, and names a limit that holds it', () => {
    const queued = diagnose({ ...input([run('a', 'queued')]), aheadByPriority: 12 });
    expect(queued.steps[0]?.blocked_by).toEqual({ kind: 'priority_queue', priority: 5, ahead: 12 });
    const wait = {
      kind: 'concurrency' as const,
      name: 'payments',
      key: 'acct-1',
      in_use: 2,
      max: 2,
      attempt: 1,
      turns: 1,
    };
    const limited = run('a', 'waiting', {
      wait_kind: 'limit',
      wait_spec: wait,
      limit_wait: wait,
      wait_reason: 'waits for a slot of limit payments (key acct-1): 2 of 2 in use',
    } as Partial<StepRunRow>);
    expect(diagnose(input([limited])).steps[0]).toMatchObject({
      blocked_by: { kind: 'concurrency', limit: 'named_limit', name: 'payments', key: 'acct-1' },
      summary: 'waits for a slot of limit payments (key acct-1): 2 of 2 in use',
    });
    const eta = new Date(now.getTime() + 30_000).toISOString();
    const rated = run('a', 'queued', {
      wake_at: new Date(eta),
      limit_wait: {
        kind: 'rate',
        name: 'partner',
        key: null,
        rate: { limit: 10, period_seconds: 60 },
        eta,
        attempt: 1,
        turns: 2,
      },
    } as Partial<StepRunRow>);
    expect(diagnose(input([rated])).steps[0]?.blocked_by).toEqual({
      kind: 'rate_limit',
      name: 'partner',
      key: null,
      limit: 10,
      period_seconds: 60,
      eta,
    });
  });

  it('says a queued execution waits for its key, or for its debounce window', () => {
    const queued = {
      ...input([run('a', 'pending')], { concurrency: { limit: 3, key: 'input.account' } }),
      execution: { id: 'ex-1', status: 'queued' as const, concurrency_key: 'acct-1', priority: 5 },
      standing: { in_use: 3, ahead: 4, key_error: null },
    };
    const answer = diagnose(queued);
    expect(answer.blocked_by).toEqual({
      kind: 'execution_concurrency',
      key: 'acct-1',
      key_error: null,
      in_use: 3,
      max: 3,
      position: 5,
      on_limit: 'queue',
    });
    expect(answer.steps[0]?.blocked_by).toEqual(answer.blocked_by);
    const until = new Date(now.getTime() + 2000);
    const deadline = new Date(now.getTime() + 9000);
    const collecting = diagnose({ ...queued, window: { key: 'u1', until, deadline } });
    expect(collecting.blocked_by).toEqual({
      kind: 'debounce',
      key: 'u1',
      eta: until.toISOString(),
      deadline: deadline.toISOString(),
    });
  });
});
