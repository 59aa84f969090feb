import { describe, expect, it } from 'vitest';
import { eventFromOutbox, isTerminalEvent } from '../../src/monitoring/execution-events.js';
import type { DescribedOutboxRow } from '../../src/store/event-outbox-store.js';

const at = new Date('2026-11-25T18:00:00.000Z');

function stepRow(overrides: Partial<DescribedOutboxRow>): DescribedOutboxRow {
  return {
    id: 1,
    execution_id: 'ex_1',
    run_id: 7,
    step_id: 'call',
    iteration: 0,
    item_index: -1,
    status: 'running',
    previous_status: 'queued',
    attempt: 1,
    detail: {},
    occurred_at: at,
    workflow_id: 'wf_1',
    workflow_version: 1,
    workflow_type: 'sequential',
    step_type: 'http',
    ...overrides,
  };
}

describe('eventFromOutbox', () => {
  it('names step changes after the new status', () => {
    const event = eventFromOutbox(
      stepRow({ detail: { started_at: '2026-11-25T18:00:00+00:00', queued_at: 'x' } }),
    );
    expect(event).toMatchObject({
      kind: 'step',
      type: 'step.running',
      step_id: 'call',
      step_type: 'http',
      item_index: null,
      attempt: 1,
      started_at: '2026-11-25T18:00:00+00:00',
      at: '2026-11-25T18:00:00.000Z',
    });
  });

  it('tells a retry (back to queued from an attempt) from a first queueing', () => {
    const retry = eventFromOutbox(
      stepRow({
        status: 'queued',
        previous_status: 'running',
        attempt: 2,
        detail: { wake_at: '2026-11-25T18:00:01+00:00', error: { message: '503' } },
      }),
    );
    expect(retry).toMatchObject({
      type: 'step.retrying',
      status: 'queued',
      next_attempt_at: '2026-11-25T18:00:01+00:00',
      error: { message: '503' },
    });
    expect(eventFromOutbox(stepRow({ status: 'queued', previous_status: 'pending' })).type).toBe(
      'step.queued',
    );
    // A timed-out wait is retried from `waiting` too.
    expect(eventFromOutbox(stepRow({ status: 'queued', previous_status: 'waiting' })).type).toBe(
      'step.retrying',
    );
  });

  it('keeps for_each items apart from the step itself', () => {
    expect(eventFromOutbox(stepRow({ item_index: 3 }))).toMatchObject({ item_index: 3 });
  });

  it('maps execution changes and knows which end the stream', () => {
    const started = eventFromOutbox(
      stepRow({ run_id: null, step_id: null, status: 'running', previous_status: null }),
    );
    expect(started).toMatchObject({ kind: 'execution', type: 'execution.running' });
    expect(isTerminalEvent(started)).toBe(false);
    const ended = eventFromOutbox(
      stepRow({
        run_id: null,
        step_id: null,
        status: 'timed_out',
        previous_status: 'running',
        detail: { duration_seconds: 1.5, error: 'Execution exceeded its timeout' },
      }),
    );
    expect(ended).toMatchObject({
      type: 'execution.timed_out',
      duration_seconds: 1.5,
      error: 'Execution exceeded its timeout',
      workflow_type: 'sequential',
    });
    expect(isTerminalEvent(ended)).toBe(true);
  });
});
