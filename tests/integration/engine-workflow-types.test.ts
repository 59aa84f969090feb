import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  type ExecutionBody,
  getExecution,
  maxOverlap,
  overlaps,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

/**
 * Every workflow type end to end through HTTP, on real Postgres, Redis and BullMQ workers.
 * Concurrency is proven from recorded started_at/completed_at intervals (ordering facts),
 * never from durations.
 */

const ctx = useTestApp({ SWEEP_INTERVAL_MS: '200', SWEEP_STALE_AFTER_MS: '2000' });

const DEADLINE_MS = 30_000;

async function runToEnd(
  workflow: Record<string, unknown>,
  input: Record<string, unknown> = {},
): Promise<ExecutionBody> {
  const workflowId = await createWorkflow(ctx.app, workflow);
  const executionId = await startExecution(ctx.app, workflowId, input);
  return waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
}

function ownRun(execution: ExecutionBody, stepId: string, iteration = 0) {
  const run = execution.steps.find(
    (step) => step.step_id === stepId && step.item_index === null && step.iteration === iteration,
  );
  if (!run) throw new Error(`no run of ${stepId}@${iteration}: ${JSON.stringify(execution)}`);
  return run;
}

describe('sequential workflows', () => {
  it('chains outputs through steps.<id>.output', async () => {
    const execution = await runToEnd(
      {
        name: 'sequential chain',
        workflow_type: 'sequential',
        steps: [
          { id: 'a', name: 'A', step_type: 'noop', config: { value: '{% input.n * 2 %}' } },
          {
            id: 'b',
            name: 'B',
            step_type: 'transform',
            config: { expression: 'steps.a.output.value + 1' },
          },
          {
            id: 'c',
            name: 'C',
            step_type: 'transform',
            config: { expression: '{"from_a": steps.a.output.value, "from_b": steps.b.output}' },
          },
        ],
      },
      { n: 20 },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ a: 'completed', b: 'completed', c: 'completed' });
    expect(execution.step_results).toEqual({
      a: { value: 40 },
      b: 41,
      c: { from_a: 40, from_b: 41 },
    });
    expect(execution.output_data).toEqual({ from_a: 40, from_b: 41 });
    // Each step started only after its predecessor completed.
    const [a, b, c] = ['a', 'b', 'c'].map((id) => ownRun(execution, id));
    expect(Date.parse(a?.completed_at ?? '')).toBeLessThanOrEqual(Date.parse(b?.started_at ?? ''));
    expect(Date.parse(b?.completed_at ?? '')).toBeLessThanOrEqual(Date.parse(c?.started_at ?? ''));
    expect(execution.workflow_version).toBe(1);
  });

  it('completes a workflow with zero steps', async () => {
    const execution = await runToEnd({ name: 'empty', workflow_type: 'sequential', steps: [] });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.steps).toEqual([]);
  });

  it('shapes output_data with config.output', async () => {
    const execution = await runToEnd(
      {
        name: 'output expression',
        workflow_type: 'sequential',
        config: { output: '{"total": steps.a.output + steps.b.output, "who": input.who}' },
        steps: [
          { id: 'a', name: 'A', step_type: 'transform', config: { expression: '2' } },
          {
            id: 'b',
            name: 'B',
            step_type: 'transform',
            config: { expression: 'steps.a.output * 20' },
          },
        ],
      },
      { who: 'me' },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.output_data).toEqual({ total: 42, who: 'me' });
  });

  it('continues past a failed step with continue_on_error', async () => {
    const execution = await runToEnd({
      name: 'continue on error',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'check',
          name: 'Check',
          step_type: 'validate',
          config: { schema: { type: 'number' }, data: 'not a number' },
          continue_on_error: true,
        },
        {
          id: 'after',
          name: 'After',
          step_type: 'transform',
          config: { expression: 'steps.check.status' },
        },
      ],
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ check: 'failed', after: 'completed' });
    expect(ownRun(execution, 'check').error?.type).toBe('validation_failed');
    expect(ownRun(execution, 'check').attempts).toBe(1);
    expect(execution.output_data).toBe('failed');
  });

  it('runs an event_driven workflow executed directly like a sequential one', async () => {
    const execution = await runToEnd(
      {
        name: 'event driven',
        workflow_type: 'event_driven',
        config: { trigger: { event: 'order.created' } },
        steps: [
          { id: 'a', name: 'A', step_type: 'transform', config: { expression: 'input.x + 1' } },
          {
            id: 'b',
            name: 'B',
            step_type: 'transform',
            config: { expression: 'steps.a.output * 3' },
          },
        ],
      },
      { x: 1 },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ a: 'completed', b: 'completed' });
    expect(execution.output_data).toBe(6);
    const [a, b] = ['a', 'b'].map((id) => ownRun(execution, id));
    expect(Date.parse(a?.completed_at ?? '')).toBeLessThanOrEqual(Date.parse(b?.started_at ?? ''));
  });
});

describe('parallel workflows', () => {
  it('runs a diamond a -> (b, c) -> d with b and c overlapping', async () => {
    const execution = await runToEnd({
      name: 'diamond',
      workflow_type: 'parallel',
      steps: [
        { id: 'a', name: 'A', step_type: 'transform', config: { expression: '1' } },
        { id: 'b', name: 'B', step_type: 'delay', config: { seconds: 1 }, dependencies: ['a'] },
        { id: 'c', name: 'C', step_type: 'delay', config: { seconds: 1 }, dependencies: ['a'] },
        {
          id: 'd',
          name: 'D',
          step_type: 'transform',
          config: { expression: '$count($keys(steps))' },
          dependencies: ['b', 'c'],
        },
      ],
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({
      a: 'completed',
      b: 'completed',
      c: 'completed',
      d: 'completed',
    });
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => ownRun(execution, id));
    if (!a || !b || !c || !d) throw new Error('missing runs');
    expect(overlaps(b, c), JSON.stringify([b, c])).toBe(true);
    for (const branch of [b, c]) {
      expect(Date.parse(a.completed_at ?? '')).toBeLessThanOrEqual(
        Date.parse(branch.started_at ?? ''),
      );
      expect(Date.parse(branch.completed_at ?? '')).toBeLessThanOrEqual(
        Date.parse(d.started_at ?? ''),
      );
    }
    // d is the only sink: its output (it sees a, b and c) is the execution's output.
    expect(execution.output_data).toBe(3);
  });

  it('respects config.max_concurrency', async () => {
    const steps = Array.from({ length: 6 }, (_, index) => ({
      id: `s${index}`,
      name: `S${index}`,
      step_type: 'delay',
      config: { seconds: 0.5 },
    }));
    const execution = await runToEnd({
      name: 'max concurrency',
      workflow_type: 'parallel',
      config: { max_concurrency: 2 },
      steps,
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    const runs = execution.steps.filter((step) => step.item_index === null);
    expect(runs).toHaveLength(6);
    expect(runs.every((run) => run.status === 'completed')).toBe(true);
    const overlap = maxOverlap(runs);
    expect(overlap, JSON.stringify(runs)).toBeLessThanOrEqual(2);
    // Without a limit the six would all run at once; with it, two still overlap.
    expect(overlap, JSON.stringify(runs)).toBe(2);
  });
});

describe('conditional workflows', () => {
  it('skips a branch by its condition, runs the join, and propagates skips', async () => {
    const execution = await runToEnd(
      {
        name: 'conditional',
        workflow_type: 'conditional',
        steps: [
          {
            id: 'start',
            name: 'Start',
            step_type: 'transform',
            config: { expression: 'input.amount' },
          },
          {
            id: 'big',
            name: 'Big',
            step_type: 'transform',
            config: { expression: '"big"' },
            dependencies: ['start'],
            condition: 'steps.start.output > 100',
          },
          {
            id: 'small',
            name: 'Small',
            step_type: 'transform',
            config: { expression: '"small"' },
            dependencies: ['start'],
            condition: 'steps.start.output <= 100',
          },
          {
            id: 'join',
            name: 'Join',
            step_type: 'transform',
            config: { expression: '[steps.big.status, steps.small.status]' },
            dependencies: ['big', 'small'],
          },
          {
            id: 'big_only',
            name: 'Big only',
            step_type: 'transform',
            config: { expression: '"ran"' },
            dependencies: ['big'],
          },
          {
            id: 'after_big_only',
            name: 'After big only',
            step_type: 'transform',
            config: { expression: '"ran"' },
            dependencies: ['big_only'],
          },
        ],
      },
      { amount: 5 },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({
      start: 'completed',
      big: 'skipped',
      small: 'completed',
      join: 'completed',
      big_only: 'skipped',
      after_big_only: 'skipped',
    });
    expect(execution.step_results.join).toEqual(['skipped', 'completed']);
    expect(ownRun(execution, 'big').wait_reason).toContain('condition is false');
    expect(ownRun(execution, 'big_only').wait_reason).toContain('skipped');
  });

  it('does not skip a step whose implicit predecessor was skipped', async () => {
    const execution = await runToEnd(
      {
        name: 'conditional implicit',
        workflow_type: 'conditional',
        steps: [
          {
            id: 'maybe',
            name: 'Maybe',
            step_type: 'transform',
            config: { expression: '1' },
            condition: 'input.go = true',
          },
          { id: 'always', name: 'Always', step_type: 'transform', config: { expression: '2' } },
        ],
      },
      { go: false },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ maybe: 'skipped', always: 'completed' });
  });
});

describe('loop workflows', () => {
  it('stops when its condition turns false', async () => {
    const execution = await runToEnd({
      name: 'loop until condition',
      workflow_type: 'loop',
      config: { loop: { condition: 'steps.count.output < 3', max_iterations: 10 } },
      steps: [
        {
          id: 'count',
          name: 'Count',
          step_type: 'transform',
          config: { expression: 'iteration + 1' },
        },
        {
          id: 'double',
          name: 'Double',
          step_type: 'transform',
          config: { expression: 'steps.count.output * 2' },
        },
      ],
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.current_iteration).toBe(2);
    for (const stepId of ['count', 'double']) {
      const runs = execution.steps.filter((step) => step.step_id === stepId);
      expect(runs.map((run) => run.iteration)).toEqual([0, 1, 2]);
      expect(runs.every((run) => run.status === 'completed')).toBe(true);
    }
    expect(execution.steps.filter((s) => s.step_id === 'count').map((s) => s.output)).toEqual([
      1, 2, 3,
    ]);
    expect(execution.steps.filter((s) => s.step_id === 'double').map((s) => s.output)).toEqual([
      2, 4, 6,
    ]);
    // The last iteration's outputs are the execution's.
    expect(execution.output_data).toBe(6);
    expect(execution.step_results).toEqual({ count: 3, double: 6 });
  });

  it('sees the number of iterations done as `iteration` in its condition', async () => {
    const execution = await runToEnd({
      name: 'loop on iteration',
      workflow_type: 'loop',
      config: { loop: { condition: 'iteration < 3', max_iterations: 10 } },
      steps: [
        { id: 'tick', name: 'Tick', step_type: 'transform', config: { expression: 'iteration' } },
      ],
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.current_iteration).toBe(2);
    expect(execution.steps.map((run) => run.output)).toEqual([0, 1, 2]);
  });

  it('stops at max_iterations when the condition always holds', async () => {
    const execution = await runToEnd({
      name: 'loop until max',
      workflow_type: 'loop',
      config: { loop: { condition: 'true', max_iterations: 4 } },
      steps: [
        { id: 'tick', name: 'Tick', step_type: 'transform', config: { expression: 'iteration' } },
      ],
    });
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.current_iteration).toBe(3);
    const runs = execution.steps.filter((step) => step.step_id === 'tick');
    expect(runs.map((run) => [run.iteration, run.status, run.output])).toEqual([
      [0, 'completed', 0],
      [1, 'completed', 1],
      [2, 'completed', 2],
      [3, 'completed', 3],
    ]);
    expect(execution.output_data).toBe(3);
  });
});

describe('for_each', () => {
  it('runs 50 items at most 5 at a time and collects the results in order', async () => {
    const items = Array.from({ length: 50 }, (_, index) => index * 10);
    const workflowId = await createWorkflow(ctx.app, {
      name: 'for each',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'wait',
          name: 'Wait',
          step_type: 'delay',
          config: { seconds: 0.2 },
          for_each: 'input.items',
          for_each_concurrency: 5,
        },
        {
          id: 'tag',
          name: 'Tag',
          step_type: 'transform',
          config: { expression: '{"index": index, "item": item}' },
          for_each: 'input.items',
          for_each_concurrency: 5,
        },
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId, { items });
    const execution = await waitForExecution(ctx.app, executionId, undefined, 60_000);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');

    const waitItems = execution.steps.filter(
      (step) => step.step_id === 'wait' && step.item_index !== null,
    );
    expect(waitItems.map((run) => run.item_index)).toEqual(items.map((_, index) => index));
    expect(
      waitItems.every((run) => run.status === 'completed'),
      JSON.stringify(
        waitItems.filter((run) => run.status !== 'completed'),
        null,
        1,
      ),
    ).toBe(true);
    const waitOutput = execution.step_results.wait as unknown[];
    expect(waitOutput).toHaveLength(50);
    expect(waitOutput).toEqual(waitItems.map((run) => run.output));
    const overlap = maxOverlap(waitItems);
    expect(overlap, JSON.stringify(waitItems)).toBeLessThanOrEqual(5);
    expect(overlap).toBeGreaterThan(1);

    const tagItems = execution.steps.filter(
      (step) => step.step_id === 'tag' && step.item_index !== null,
    );
    expect(maxOverlap(tagItems)).toBeLessThanOrEqual(5);
    const expected = items.map((item, index) => ({ index, item }));
    expect(execution.step_results.tag).toEqual(expected);
    expect(execution.output_data).toEqual(expected);
  }, 90_000);

  it('completes a for_each over an empty list with an empty result', async () => {
    const execution = await runToEnd(
      {
        name: 'for each empty',
        workflow_type: 'sequential',
        steps: [
          {
            id: 'each',
            name: 'Each',
            step_type: 'transform',
            config: { expression: 'item' },
            for_each: 'input.items',
          },
        ],
      },
      { items: [] },
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.output_data).toEqual([]);
  });
});

describe('reads', () => {
  it('shows a finished execution unchanged on a second read', async () => {
    const execution = await runToEnd({
      name: 'stable read',
      workflow_type: 'sequential',
      steps: [{ id: 'a', name: 'A', step_type: 'noop', config: { v: 1 } }],
    });
    expect(execution.status).toBe('completed');
    const again = await getExecution(ctx.app, execution.id);
    expect(again.status).toBe('completed');
    expect(again.steps).toEqual(execution.steps);
  });
});
