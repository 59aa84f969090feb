import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { validateWorkflow } from '../../src/core/workflow-validator.js';
import {
  ACTIVE_STEP_STATUSES,
  isIn,
  type StepStatus,
  TERMINAL_STEP_STATUSES,
} from '../../src/domain/statuses.js';
import {
  type StepInput,
  stepInputSchema,
  type WorkflowDefinition,
  type WorkflowType,
} from '../../src/domain/workflow-definition.js';
import {
  hasChanges,
  predictCompletion,
  type RunState,
  type SchedulerDecision,
  schedule,
  sinkSteps,
} from '../../src/engine/scheduler.js';
import { prng } from '../helpers/random.js';

const limits = loadConfig({});

/** A step as the request schema hands it over: defaults applied, id = name. */
function step(id: string, extra: Partial<StepInput> = {}): StepInput {
  return stepInputSchema.parse({ id, name: id, step_type: 'noop', ...extra });
}

function workflow(
  type: WorkflowType,
  steps: StepInput[],
  config: Record<string, unknown> = {},
): WorkflowDefinition {
  return validateWorkflow(
    { name: 'Workflow', workflow_type: type, config, metadata: {}, tags: [], steps },
    limits,
  );
}

/** Own runs (item_index -1) from a step id -> status map. */
function own(statuses: Record<string, StepStatus>): RunState[] {
  return Object.entries(statuses).map(([step_id, status]) => ({
    step_id,
    item_index: -1,
    status,
  }));
}

/** for_each item runs of one step, in index order. */
function items(stepId: string, statuses: StepStatus[]): RunState[] {
  return statuses.map((status, item_index) => ({ step_id: stepId, item_index, status }));
}

/**
 * The runs as the engine gives them to the scheduler: each for_each step's own run counts its
 * item runs by state (as the step_executions_count_items trigger keeps them), items left out.
 */
function counted(runs: readonly RunState[]): RunState[] {
  const items = runs.filter((run) => run.item_index >= 0);
  return runs
    .filter((run) => run.item_index < 0)
    .map((run) => {
      const mine = items.filter((item) => item.step_id === run.step_id);
      if (mine.length === 0) return run;
      const count = (statuses: readonly StepStatus[]) =>
        mine.filter((item) => statuses.includes(item.status)).length;
      return {
        ...run,
        item_count: mine.length,
        items_active: count(['queued', 'running']),
        items_waiting: count(['waiting']),
        items_done: count(TERMINAL_STEP_STATUSES),
        items_failed: count(['failed', 'cancelled']),
      };
    });
}

function decide(definition: WorkflowDefinition, runs: RunState[], paused = false) {
  return schedule({ definition, runs: counted(runs), paused });
}

const diamond = () =>
  workflow('parallel', [
    step('a'),
    step('b', { dependencies: ['a'] }),
    step('c', { dependencies: ['a'] }),
    step('d', { dependencies: ['b', 'c'] }),
  ]);

describe('schedule: readiness', () => {
  const sequential = () => workflow('sequential', [step('a'), step('b'), step('c')]);

  it('starts only the first step of a sequential workflow', () => {
    const decision = decide(sequential(), own({ a: 'pending', b: 'pending', c: 'pending' }));
    expect(decision.ready).toEqual(['a']);
    expect(decision.skip).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it.each<StepStatus>(['pending', 'queued', 'running', 'waiting'])(
    'waits while the dependency is %s',
    (status) => {
      const decision = decide(sequential(), own({ a: status, b: 'pending', c: 'pending' }));
      expect(decision.ready).toEqual(status === 'pending' ? ['a'] : []);
    },
  );

  it('starts the next step once its dependency completed', () => {
    const decision = decide(sequential(), own({ a: 'completed', b: 'pending', c: 'pending' }));
    expect(decision.ready).toEqual(['b']);
  });

  it('never starts a step that is no longer pending', () => {
    const decision = decide(sequential(), own({ a: 'completed', b: 'queued', c: 'pending' }));
    expect(decision.ready).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('treats a skipped implicit predecessor as met (no skip propagation)', () => {
    const decision = decide(sequential(), own({ a: 'completed', b: 'skipped', c: 'pending' }));
    expect(decision.ready).toEqual(['c']);
    expect(decision.skip).toEqual([]);
  });

  it('runs after a dependency that failed with continue_on_error', () => {
    const definition = workflow('sequential', [step('a', { continue_on_error: true }), step('b')]);
    const decision = decide(definition, own({ a: 'failed', b: 'pending' }));
    expect(decision.ready).toEqual(['b']);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('does not treat a cancelled dependency as met', () => {
    const definition = workflow('parallel', [
      step('a', { continue_on_error: true }),
      step('b'),
      step('c', { dependencies: ['a', 'b'] }),
    ]);
    const decision = decide(definition, own({ a: 'completed', b: 'cancelled', c: 'pending' }));
    expect(decision.ready).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'failed', step_id: 'b' });
  });

  it('resolves dependencies declared by name', () => {
    const definition = workflow('parallel', [
      stepInputSchema.parse({ name: 'Fetch Data', step_type: 'noop' }),
      step('use', { dependencies: ['Fetch Data'] }),
    ]);
    expect(decide(definition, own({ fetch_data: 'pending', use: 'pending' })).ready).toEqual([
      'fetch_data',
    ]);
    expect(decide(definition, own({ fetch_data: 'completed', use: 'pending' })).ready).toEqual([
      'use',
    ]);
  });

  it('starts every independent step of a parallel workflow at once, in definition order', () => {
    const definition = workflow('parallel', [step('x'), step('y'), step('z')]);
    const decision = decide(definition, own({ x: 'pending', y: 'pending', z: 'pending' }));
    expect(decision.ready).toEqual(['x', 'y', 'z']);
  });

  it('lets a step with an explicit empty dependency list start at once in a sequential flow', () => {
    const definition = workflow('sequential', [step('a'), step('b', { dependencies: [] })]);
    const decision = decide(definition, own({ a: 'pending', b: 'pending' }));
    expect(decision.ready).toEqual(['a', 'b']);
  });

  it('orders a diamond: a, then b and c together, then d', () => {
    const definition = diamond();
    expect(
      decide(definition, own({ a: 'pending', b: 'pending', c: 'pending', d: 'pending' })).ready,
    ).toEqual(['a']);
    expect(
      decide(definition, own({ a: 'completed', b: 'pending', c: 'pending', d: 'pending' })).ready,
    ).toEqual(['b', 'c']);
    expect(
      decide(definition, own({ a: 'completed', b: 'completed', c: 'running', d: 'pending' })).ready,
    ).toEqual([]);
    expect(
      decide(definition, own({ a: 'completed', b: 'completed', c: 'completed', d: 'pending' }))
        .ready,
    ).toEqual(['d']);
  });
});

describe('schedule: skip propagation', () => {
  it('skips a step whose declared dependencies were all skipped', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b'),
      step('c', { dependencies: ['a', 'b'] }),
    ]);
    const decision = decide(definition, own({ a: 'skipped', b: 'skipped', c: 'pending' }));
    expect(decision.skip).toEqual(['c']);
    expect(decision.ready).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('skips on a declared dependency in a sequential workflow too', () => {
    const definition = workflow('sequential', [step('a'), step('b', { dependencies: ['a'] })]);
    expect(decide(definition, own({ a: 'skipped', b: 'pending' })).skip).toEqual(['b']);
  });

  it('runs a join with one skipped and one completed dependency', () => {
    const definition = diamond();
    const decision = decide(
      definition,
      own({ a: 'completed', b: 'skipped', c: 'completed', d: 'pending' }),
    );
    expect(decision.ready).toEqual(['d']);
    expect(decision.skip).toEqual([]);
  });

  it('runs a join with one skipped dependency and one that failed with continue_on_error', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b', { continue_on_error: true }),
      step('c', { dependencies: ['a', 'b'] }),
    ]);
    const decision = decide(definition, own({ a: 'skipped', b: 'failed', c: 'pending' }));
    expect(decision.ready).toEqual(['c']);
  });

  it('neither skips nor starts a join while one dependency is unfinished', () => {
    const decision = decide(
      diamond(),
      own({ a: 'completed', b: 'skipped', c: 'running', d: 'pending' }),
    );
    expect(decision.ready).toEqual([]);
    expect(decision.skip).toEqual([]);
  });

  it('propagates along a chain one pass at a time', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b', { dependencies: ['a'] }),
      step('c', { dependencies: ['b'] }),
    ]);
    expect(decide(definition, own({ a: 'skipped', b: 'pending', c: 'pending' })).skip).toEqual([
      'b',
    ]);
    expect(decide(definition, own({ a: 'skipped', b: 'skipped', c: 'pending' })).skip).toEqual([
      'c',
    ]);
  });

  it('is not limited by max_concurrency', () => {
    const definition = workflow(
      'parallel',
      [
        step('a'),
        step('b'),
        step('x', { dependencies: ['a'] }),
        step('y', { dependencies: ['a'] }),
      ],
      { max_concurrency: 1 },
    );
    const decision = decide(
      definition,
      own({ a: 'skipped', b: 'running', x: 'pending', y: 'pending' }),
    );
    expect(decision.skip).toEqual(['x', 'y']);
  });
});

describe('schedule: failures', () => {
  it('fails the iteration on a failed step without continue_on_error, naming it', () => {
    const definition = workflow('parallel', [step('a'), step('b'), step('c')]);
    const decision = decide(definition, own({ a: 'completed', b: 'failed', c: 'pending' }));
    expect(decision.outcome).toEqual({ kind: 'failed', step_id: 'b' });
    expect(decision.ready).toEqual([]);
    expect(decision.skip).toEqual([]);
  });

  it('names the first failed step in definition order', () => {
    const definition = workflow('parallel', [step('a'), step('b'), step('c')]);
    const decision = decide(definition, own({ a: 'completed', b: 'failed', c: 'failed' }));
    expect(decision.outcome).toEqual({ kind: 'failed', step_id: 'b' });
  });

  it('ignores failures of steps with continue_on_error', () => {
    const definition = workflow('parallel', [step('a', { continue_on_error: true }), step('b')]);
    expect(decide(definition, own({ a: 'failed', b: 'completed' })).outcome).toEqual({
      kind: 'iteration_done',
    });
  });

  it('fails even while paused', () => {
    const definition = workflow('sequential', [step('a'), step('b')]);
    expect(decide(definition, own({ a: 'failed', b: 'pending' }), true).outcome).toEqual({
      kind: 'failed',
      step_id: 'a',
    });
  });
});

describe('schedule: max_concurrency', () => {
  const five = () =>
    workflow('parallel', [step('s1'), step('s2'), step('s3'), step('s4'), step('s5')], {
      max_concurrency: 2,
    });

  it('caps how many steps start at once', () => {
    const decision = decide(
      five(),
      own({ s1: 'pending', s2: 'pending', s3: 'pending', s4: 'pending', s5: 'pending' }),
    );
    expect(decision.ready).toEqual(['s1', 's2']);
  });

  it.each<StepStatus>(['queued', 'running', 'waiting'])('counts %s runs as active', (status) => {
    const decision = decide(
      five(),
      own({ s1: status, s2: 'pending', s3: 'pending', s4: 'pending', s5: 'pending' }),
    );
    expect(decision.ready).toEqual(['s2']);
  });

  it('does not count finished runs', () => {
    const decision = decide(
      five(),
      own({ s1: 'completed', s2: 'skipped', s3: 'pending', s4: 'pending', s5: 'pending' }),
    );
    expect(decision.ready).toEqual(['s3', 's4']);
  });

  it('starts nothing when the limit is reached', () => {
    const decision = decide(
      five(),
      own({ s1: 'running', s2: 'waiting', s3: 'pending', s4: 'pending', s5: 'pending' }),
    );
    expect(decision.ready).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('counts a running for_each step as one active run, not its items', () => {
    const definition = workflow(
      'parallel',
      [step('fan', { for_each: 'input.list' }), step('b'), step('c')],
      { max_concurrency: 2 },
    );
    const decision = decide(definition, [
      ...own({ fan: 'running', b: 'pending', c: 'pending' }),
      ...items('fan', ['running', 'running', 'running']),
    ]);
    expect(decision.ready).toEqual(['b']);
  });
});

describe('schedule: paused', () => {
  it('starts nothing new', () => {
    const definition = workflow('parallel', [step('a'), step('b')]);
    const decision = decide(definition, own({ a: 'pending', b: 'pending' }), true);
    expect(decision.ready).toEqual([]);
    expect(decision.startItems).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('still skips and finishes for_each steps', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b', { dependencies: ['a'] }),
      step('fan', { for_each: 'input.list' }),
      step('more', { for_each: 'input.list', for_each_concurrency: 5 }),
      step('c'),
    ]);
    const decision = decide(
      definition,
      [
        ...own({ a: 'skipped', b: 'pending', fan: 'running', more: 'running', c: 'pending' }),
        ...items('fan', ['completed', 'completed']),
        ...items('more', ['pending', 'pending']),
      ],
      true,
    );
    expect(decision.skip).toEqual(['b']);
    expect(decision.finishForEach).toEqual([{ step_id: 'fan', failed: false }]);
    expect(decision.ready).toEqual([]);
    expect(decision.startItems).toEqual([]);
  });

  it('reports the end of an iteration when everything already finished', () => {
    const definition = workflow('sequential', [step('a'), step('b')]);
    expect(decide(definition, own({ a: 'completed', b: 'completed' }), true).outcome).toEqual({
      kind: 'iteration_done',
    });
  });
});

describe('schedule: for_each', () => {
  const fan = (concurrency = 2) =>
    workflow('sequential', [
      step('fan', { for_each: 'input.list', for_each_concurrency: concurrency }),
      step('after'),
    ]);

  it('starts items up to for_each_concurrency, lowest index first', () => {
    const decision = decide(fan(), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['pending', 'pending', 'pending', 'pending', 'pending']),
    ]);
    expect(decision.startItems).toEqual([{ step_id: 'fan', count: 2 }]);
    expect(decision.finishForEach).toEqual([]);
    expect(decision.ready).toEqual([]);
  });

  it('counts active items against the concurrency', () => {
    const decision = decide(fan(3), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['completed', 'running', 'waiting', 'pending', 'pending']),
    ]);
    expect(decision.startItems).toEqual([{ step_id: 'fan', count: 1 }]);
  });

  it('starts nothing while the concurrency is used up', () => {
    const decision = decide(fan(2), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['queued', 'running', 'pending']),
    ]);
    expect(decision.startItems).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('starts no more items than are left to start', () => {
    const decision = decide(fan(5), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['completed', 'running', 'pending']),
    ]);
    expect(decision.startItems).toEqual([{ step_id: 'fan', count: 1 }]);
  });

  it('reads the counts on the step run and ignores item rows', () => {
    const runs: RunState[] = [
      {
        step_id: 'fan',
        item_index: -1,
        status: 'running',
        item_count: 100_000,
        items_active: 1,
        items_waiting: 0,
        items_done: 40_000,
        items_failed: 0,
      },
      ...own({ after: 'pending' }),
      ...items('fan', ['pending', 'pending', 'pending']),
    ];
    expect(schedule({ definition: fan(3), runs, paused: false }).startItems).toEqual([
      { step_id: 'fan', count: 2 },
    ]);
  });

  it('finishes the step when every item ended well', () => {
    const decision = decide(fan(), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['completed', 'completed', 'completed']),
    ]);
    expect(decision.finishForEach).toEqual([{ step_id: 'fan', failed: false }]);
    expect(decision.startItems).toEqual([]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it.each<StepStatus>(['failed', 'cancelled'])(
    'finishes it as failed when an item %s',
    (status) => {
      const decision = decide(fan(), [
        ...own({ fan: 'running', after: 'pending' }),
        ...items('fan', ['completed', status, 'completed']),
      ]);
      expect(decision.finishForEach).toEqual([{ step_id: 'fan', failed: true }]);
    },
  );

  it('waits for every item before finishing, even after a failure', () => {
    const decision = decide(fan(), [
      ...own({ fan: 'running', after: 'pending' }),
      ...items('fan', ['failed', 'running', 'pending']),
    ]);
    expect(decision.finishForEach).toEqual([]);
    expect(decision.startItems).toEqual([{ step_id: 'fan', count: 1 }]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('treats a ready for_each step like any other ready step (the state manager expands it)', () => {
    expect(decide(fan(), own({ fan: 'pending', after: 'pending' })).ready).toEqual(['fan']);
  });

  it('runs the next step after the for_each step completed', () => {
    const decision = decide(fan(), [
      ...own({ fan: 'completed', after: 'pending' }),
      ...items('fan', ['completed', 'completed']),
    ]);
    expect(decision.ready).toEqual(['after']);
    expect(decision.finishForEach).toEqual([]);
  });

  it('keeps items of different steps apart', () => {
    const definition = workflow('parallel', [
      step('one', { for_each: 'input.list', for_each_concurrency: 1 }),
      step('two', { for_each: 'input.list', for_each_concurrency: 1 }),
    ]);
    const decision = decide(definition, [
      ...own({ one: 'running', two: 'running' }),
      ...items('one', ['running', 'pending']),
      ...items('two', ['completed', 'pending']),
    ]);
    expect(decision.startItems).toEqual([{ step_id: 'two', count: 1 }]);
  });
});

describe('schedule: outcome', () => {
  it('is iteration_done when every step is terminal and nothing changes', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b'),
      step('c', { continue_on_error: true }),
    ]);
    expect(decide(definition, own({ a: 'completed', b: 'skipped', c: 'failed' })).outcome).toEqual({
      kind: 'iteration_done',
    });
  });

  it('is iteration_done for a workflow without steps', () => {
    expect(decide(workflow('sequential', []), []).outcome).toEqual({ kind: 'iteration_done' });
  });

  it('is not iteration_done while a skip is still to be applied', () => {
    const definition = workflow('parallel', [step('a'), step('b', { dependencies: ['a'] })]);
    const decision = decide(definition, own({ a: 'skipped', b: 'pending' }));
    expect(decision.skip).toEqual(['b']);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('is not iteration_done while a for_each step still has to be finished', () => {
    const definition = workflow('sequential', [step('fan', { for_each: 'input.list' })]);
    const decision = decide(definition, [
      ...own({ fan: 'running' }),
      ...items('fan', ['completed']),
    ]);
    expect(decision.finishForEach).toHaveLength(1);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('is not iteration_done when a step has no run yet', () => {
    const definition = workflow('parallel', [step('a'), step('b')]);
    expect(decide(definition, own({ a: 'completed' })).outcome).toEqual({ kind: 'running' });
  });

  it('is waiting when nothing is queued or running and something waits', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('b'),
      step('c', { dependencies: ['a'] }),
    ]);
    expect(decide(definition, own({ a: 'waiting', b: 'completed', c: 'pending' })).outcome).toEqual(
      { kind: 'waiting' },
    );
  });

  it.each<StepStatus>(['queued', 'running'])('is running when another run is %s', (status) => {
    const definition = workflow('parallel', [step('a'), step('b')]);
    expect(decide(definition, own({ a: 'waiting', b: status })).outcome).toEqual({
      kind: 'running',
    });
  });

  it('is waiting when the items of a for_each step all wait', () => {
    const definition = workflow('sequential', [
      step('fan', { for_each: 'input.list', for_each_concurrency: 2 }),
    ]);
    const decision = decide(definition, [
      ...own({ fan: 'running' }),
      ...items('fan', ['waiting', 'completed', 'waiting']),
    ]);
    expect(decision.outcome).toEqual({ kind: 'waiting' });
  });

  it('is running when a for_each item runs', () => {
    const definition = workflow('sequential', [step('fan', { for_each: 'input.list' })]);
    const decision = decide(definition, [
      ...own({ fan: 'running' }),
      ...items('fan', ['waiting', 'running']),
    ]);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });

  it('is running, not waiting, when a waiting step leaves other steps to start', () => {
    const definition = workflow('parallel', [step('a'), step('b')]);
    const decision = decide(definition, own({ a: 'waiting', b: 'pending' }));
    expect(decision.ready).toEqual(['b']);
    expect(decision.outcome).toEqual({ kind: 'running' });
  });
});

describe('sinkSteps', () => {
  it('is the last step of a sequential workflow', () => {
    expect(sinkSteps(workflow('sequential', [step('a'), step('b'), step('c')]))).toEqual(['c']);
  });

  it('is the join of a diamond', () => {
    expect(sinkSteps(diamond())).toEqual(['d']);
  });

  it('is every step of a parallel workflow without dependencies', () => {
    expect(sinkSteps(workflow('parallel', [step('a'), step('b')]))).toEqual(['a', 'b']);
  });

  it('lists every leaf of a fan-out in definition order', () => {
    const definition = workflow('parallel', [
      step('root'),
      step('left', { dependencies: ['root'] }),
      step('alone'),
      step('right', { dependencies: ['root'] }),
    ]);
    expect(sinkSteps(definition)).toEqual(['left', 'alone', 'right']);
  });

  it('is empty for a workflow without steps', () => {
    expect(sinkSteps(workflow('parallel', []))).toEqual([]);
  });
});

describe('predictCompletion', () => {
  const sequential = () => workflow('sequential', [step('a'), step('b'), step('c')]);
  const fanIn = () =>
    workflow('parallel', [
      step('root'),
      step('b1', { dependencies: ['root'] }),
      step('b2', { dependencies: ['root'] }),
      step('b3', { dependencies: ['root'] }),
      step('join', { dependencies: ['b1', 'b2', 'b3'] }),
    ]);
  /** `runs` hold the completed run of `stepId` as completed already. */
  const predict = (definition: WorkflowDefinition, runs: RunState[], stepId: string) =>
    predictCompletion({ definition, runs, paused: false }, stepId);

  it('names the next step of a sequential chain', () => {
    expect(predict(sequential(), own({ a: 'completed', b: 'pending', c: 'pending' }), 'a')).toEqual(
      { kind: 'successor', stepId: 'b', blockers: [] },
    );
  });

  it('ends the iteration with its last run', () => {
    const runs = own({ a: 'completed', b: 'completed', c: 'completed' });
    expect(predict(sequential(), runs, 'c')).toEqual({ kind: 'end' });
  });

  it('starts the join with the last branch, and otherwise names what keeps it waiting', () => {
    expect(
      predict(
        fanIn(),
        own({
          root: 'completed',
          b1: 'completed',
          b2: 'completed',
          b3: 'completed',
          join: 'pending',
        }),
        'b3',
      ),
    ).toEqual({ kind: 'successor', stepId: 'join', blockers: [] });
    expect(
      predict(
        fanIn(),
        own({ root: 'completed', b1: 'completed', b2: 'running', b3: 'queued', join: 'pending' }),
        'b1',
      ),
    ).toEqual({ kind: 'quiet', blockers: ['b3'], active: ['b2', 'b3'] });
  });

  it('names a blocker for every other dependent of a step that also starts one', () => {
    const definition = workflow('parallel', [
      step('a'),
      step('x'),
      step('b', { dependencies: ['a'] }),
      step('c', { dependencies: ['a', 'x'] }),
    ]);
    expect(
      predict(definition, own({ a: 'completed', x: 'running', b: 'pending', c: 'pending' }), 'a'),
    ).toEqual({ kind: 'successor', stepId: 'b', blockers: ['x'] });
  });

  it('predicts nothing when the completion takes a decision', () => {
    // Two steps become ready.
    expect(
      predict(
        fanIn(),
        own({ root: 'completed', b1: 'pending', b2: 'pending', b3: 'pending', join: 'pending' }),
        'root',
      ),
    ).toBe(null);
    // The next step has a condition or a for_each.
    const conditional = workflow('sequential', [step('a'), step('b', { condition: 'true' })]);
    expect(predict(conditional, own({ a: 'completed', b: 'pending' }), 'a')).toBe(null);
    const forEach = workflow('sequential', [step('a'), step('b', { for_each: 'input.list' })]);
    expect(predict(forEach, own({ a: 'completed', b: 'pending' }), 'a')).toBe(null);
    // Only sleeping runs are left: the execution would wait.
    expect(
      predict(
        fanIn(),
        own({ root: 'completed', b1: 'completed', b2: 'waiting', b3: 'waiting', join: 'pending' }),
        'b1',
      ),
    ).toBe(null);
    // max_concurrency: an end frees a slot for any step.
    const limited = workflow('parallel', [step('a'), step('b'), step('c')], { max_concurrency: 2 });
    expect(predict(limited, own({ a: 'completed', b: 'running', c: 'pending' }), 'a')).toBe(null);
    // Paused: nothing starts.
    expect(
      predictCompletion(
        {
          definition: sequential(),
          runs: own({ a: 'completed', b: 'pending', c: 'pending' }),
          paused: true,
        },
        'a',
      ),
    ).toBe(null);
  });

  it('agrees with the general path: the scheduler run to its fixpoint', () => {
    // The general path applies decisions until none is left. A prediction made from the
    // current state must be exactly that fixpoint (conditions held true).
    let predicted = 0;
    for (let seed = 1; seed <= 300; seed += 1) {
      const random = prng(seed * 104_729);
      const definition = randomWorkflow(random, { continueOnError: 0.3, forEach: 0 });
      for (const state of fixpoints(definition, random)) {
        for (const done of state.filter((run) => run.status === 'running')) {
          const runs = completing(state, done.step_id);
          const outcome = predict(definition, runs, done.step_id);
          if (outcome === null) continue;
          predicted += 1;
          const fixpoint = toFixpoint(definition, runs);
          if (outcome.kind === 'successor') {
            expect(fixpoint, `seed ${seed}`).toEqual(
              runs.map((run) =>
                run.step_id === outcome.stepId ? { ...run, status: 'running' } : run,
              ),
            );
          } else {
            expect(fixpoint, `seed ${seed}`).toEqual(runs);
            const after = schedule({ definition, runs: fixpoint, paused: false });
            expect(after.outcome.kind).toBe(outcome.kind === 'end' ? 'iteration_done' : 'running');
          }
        }
      }
    }
    expect(predicted).toBeGreaterThan(300);
  });

  it('is sound when made from an older state and its witnesses still hold', () => {
    // A worker predicts from the runs as it saw them when it claimed its run, some states
    // ago. Whenever the witnesses hold in the current state, the prediction must be what the
    // scheduler decides from the current state.
    let checked = 0;
    for (let seed = 1; seed <= 400; seed += 1) {
      const random = prng(seed * 48_271);
      const definition = randomWorkflow(random, { continueOnError: 0.2, forEach: 0 });
      const states = fixpoints(definition, random);
      for (let now = 0; now < states.length; now += 1) {
        const actual = states[now] as RunState[];
        for (const done of actual.filter((run) => run.status === 'running')) {
          const since = states.findIndex(
            (state) => state.find((run) => run.step_id === done.step_id)?.status === 'running',
          );
          const seen = states[since + Math.floor(random() * (now - since + 1))] as RunState[];
          const outcome = predict(definition, completing(seen, done.step_id), done.step_id);
          if (outcome === null) continue;
          const status = (id: string) => actual.find((run) => run.step_id === id)?.status;
          const unfinished = (id: string) =>
            !isIn(TERMINAL_STEP_STATUSES, status(id) as StepStatus);
          if (outcome.kind !== 'end' && !outcome.blockers.every(unfinished)) continue;
          if (
            outcome.kind === 'quiet' &&
            !outcome.active.some((id) => ['queued', 'running'].includes(status(id) ?? ''))
          ) {
            continue;
          }
          checked += 1;
          const after = schedule({
            definition,
            runs: completing(actual, done.step_id),
            paused: false,
          });
          const expected =
            outcome.kind === 'successor'
              ? { ready: [outcome.stepId], outcome: 'running' }
              : { ready: [], outcome: outcome.kind === 'end' ? 'iteration_done' : 'running' };
          expect(
            { ready: after.ready, skip: after.skip, outcome: after.outcome.kind },
            `seed ${seed}`,
          ).toEqual({ ...expected, skip: [] });
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });
});

/** `runs` with the run of `stepId` completed. */
function completing(runs: RunState[], stepId: string): RunState[] {
  return runs.map((run) =>
    run.step_id === stepId && run.item_index < 0 ? { ...run, status: 'completed' } : run,
  );
}

/** Applies the scheduler's decisions (conditions true) until it has none left. */
function toFixpoint(definition: WorkflowDefinition, start: RunState[]): RunState[] {
  let runs = start;
  for (let pass = 0; pass < 100; pass += 1) {
    const decision = schedule({ definition, runs, paused: false });
    if (!hasChanges(decision)) return runs;
    runs = runs.map((run): RunState => {
      if (run.item_index >= 0) return run;
      if (decision.ready.includes(run.step_id)) return { ...run, status: 'running' };
      if (decision.skip.includes(run.step_id)) return { ...run, status: 'skipped' };
      return run;
    });
  }
  throw new Error('no fixpoint');
}

/**
 * The states an execution passes through, each a scheduler fixpoint (what every committed
 * transaction leaves): ready steps start, then one active run ends (completed, or failed when
 * it may) or starts waiting, and so on until nothing is active.
 */
function fixpoints(definition: WorkflowDefinition, random: () => number): RunState[][] {
  let runs: RunState[] = definition.steps.map((s) => ({
    step_id: s.id,
    item_index: -1,
    status: 'pending',
  }));
  const states: RunState[][] = [];
  for (let guard = 0; guard < 200; guard += 1) {
    for (;;) {
      const decision = schedule({ definition, runs, paused: false });
      if (!hasChanges(decision)) break;
      runs = runs.map((run) =>
        decision.ready.includes(run.step_id)
          ? { ...run, status: random() < 0.5 ? 'queued' : 'running' }
          : decision.skip.includes(run.step_id)
            ? { ...run, status: 'skipped' }
            : run,
      );
    }
    states.push(runs);
    const active = runs.filter((run) => isIn(ACTIVE_STEP_STATUSES, run.status));
    const next = active[Math.floor(random() * active.length)];
    if (!next) break;
    const roll = random();
    const status: StepStatus =
      next.status === 'queued' ? 'running' : roll < 0.2 ? 'waiting' : 'completed';
    runs = runs.map((run) => (run === next ? { ...run, status } : run));
  }
  return states;
}

/* ------------------------------------------------------------------------------------------ */
/* Property-style checks: random DAGs driven to the end by a tiny model of the state manager.  */
/* ------------------------------------------------------------------------------------------ */

interface RandomWorkflowOptions {
  /** Chance that a step declares continue_on_error. */
  continueOnError: number;
  /** Chance that a step has a for_each expression. */
  forEach: number;
}

function randomWorkflow(random: () => number, options: RandomWorkflowOptions): WorkflowDefinition {
  const count = 1 + Math.floor(random() * 12);
  const type: WorkflowType = random() < 0.5 ? 'parallel' : 'sequential';
  const steps: StepInput[] = [];
  for (let index = 0; index < count; index += 1) {
    const extra: Partial<StepInput> = {};
    // Some steps keep the type's implicit order, others declare 0-3 earlier steps.
    if (random() < 0.7) {
      const dependencies = new Set<string>();
      const wanted = Math.floor(random() * 4);
      for (let n = 0; n < wanted && index > 0; n += 1) {
        dependencies.add(`s${Math.floor(random() * index)}`);
      }
      extra.dependencies = [...dependencies];
    }
    if (random() < options.continueOnError) extra.continue_on_error = true;
    if (random() < options.forEach) {
      extra.for_each = 'input.list';
      extra.for_each_concurrency = 1 + Math.floor(random() * 3);
    }
    steps.push(step(`s${index}`, extra));
  }
  const config = random() < 0.5 ? { max_concurrency: 1 + Math.floor(random() * 3) } : {};
  return workflow(type, steps, config);
}

interface SimulationOptions {
  /** Chance that a ready step's condition is false (the state manager skips it). */
  conditionFalse: number;
  /** Chance that a finished attempt fails rather than completes. */
  failure: number;
}

interface SimulationResult {
  final: Map<string, StepStatus>;
  /** Steps in the order they were started (queued or expanded). */
  started: string[];
  /** Steps the scheduler skipped for propagation. */
  propagated: Set<string>;
  /** Steps the model skipped for a false condition. */
  conditionSkipped: Set<string>;
  outcome: SchedulerDecision['outcome'];
}

/** Checks every decision against the spec, applies it, and moves one active run when idle. */
function simulate(
  definition: WorkflowDefinition,
  random: () => number,
  options: SimulationOptions,
): SimulationResult {
  const byId = new Map(definition.steps.map((s) => [s.id, s]));
  const runs: RunState[] = own(Object.fromEntries(definition.steps.map((s) => [s.id, 'pending'])));
  const ownRun = (id: string) => runs.find((r) => r.step_id === id && r.item_index < 0) as RunState;
  const status = (id: string) => ownRun(id).status;
  const started: string[] = [];
  const propagated = new Set<string>();
  const conditionSkipped = new Set<string>();
  const maxConcurrency = definition.config.max_concurrency;
  const result = (outcome: SchedulerDecision['outcome']): SimulationResult => ({
    final: new Map(definition.steps.map((s) => [s.id, status(s.id)])),
    started,
    propagated,
    conditionSkipped,
    outcome,
  });

  for (let tick = 0; tick < 10_000; tick += 1) {
    const decision = schedule({ definition, runs: counted(runs), paused: false });
    const paused = schedule({ definition, runs: counted(runs), paused: true });
    // Pausing holds back starts only.
    expect(paused.ready).toEqual([]);
    expect(paused.startItems).toEqual([]);
    expect(paused.skip).toEqual(decision.skip);
    expect(paused.finishForEach).toEqual(decision.finishForEach);

    if (decision.outcome.kind === 'failed') {
      const failed = definition.steps.find(
        (s) => (status(s.id) === 'failed' || status(s.id) === 'cancelled') && !s.continue_on_error,
      );
      expect(decision.outcome.step_id).toBe(failed?.id);
      return result(decision.outcome);
    }

    for (const id of [...decision.ready, ...decision.skip]) {
      const s = byId.get(id);
      expect(s).toBeDefined();
      expect(status(id)).toBe('pending');
      for (const dependency of s?.depends_on ?? []) {
        const dependencyStatus = status(dependency);
        const met =
          dependencyStatus === 'completed' ||
          dependencyStatus === 'skipped' ||
          (dependencyStatus === 'failed' && byId.get(dependency)?.continue_on_error === true);
        expect(met, `${id} decided before ${dependency} (${dependencyStatus})`).toBe(true);
      }
      const declaredAllSkipped =
        s?.dependencies !== null &&
        (s?.dependencies.length ?? 0) > 0 &&
        (s?.dependencies ?? []).every((d) => status(d) === 'skipped');
      expect(decision.skip.includes(id), `skip decision for ${id}`).toBe(declaredAllSkipped);
    }

    let changed = false;
    for (const id of decision.skip) {
      ownRun(id).status = 'skipped';
      propagated.add(id);
      changed = true;
    }
    for (const id of decision.ready) {
      changed = true;
      const s = byId.get(id);
      if (random() < options.conditionFalse) {
        ownRun(id).status = 'skipped';
        conditionSkipped.add(id);
        continue;
      }
      started.push(id);
      if (s?.for_each) {
        ownRun(id).status = 'running';
        const count = Math.floor(random() * 4);
        if (count === 0) ownRun(id).status = 'completed';
        for (let index = 0; index < count; index += 1) {
          runs.push({ step_id: id, item_index: index, status: 'pending' });
        }
      } else {
        ownRun(id).status = 'queued';
      }
    }
    for (const start of decision.startItems) {
      const pending = runs.filter(
        (r) => r.step_id === start.step_id && r.item_index >= 0 && r.status === 'pending',
      );
      expect(pending.length).toBeGreaterThanOrEqual(start.count);
      for (const run of pending.slice(0, start.count)) run.status = 'queued';
      changed = true;
    }
    for (const finished of decision.finishForEach) {
      const stepItems = runs.filter((r) => r.step_id === finished.step_id && r.item_index >= 0);
      expect(stepItems.every((r) => isIn(TERMINAL_STEP_STATUSES, r.status))).toBe(true);
      expect(finished.failed).toBe(stepItems.some((r) => r.status === 'failed'));
      ownRun(finished.step_id).status = finished.failed ? 'failed' : 'completed';
      changed = true;
    }

    // Concurrency limits hold after every applied decision.
    const activeOwn = runs.filter((r) => r.item_index < 0 && isIn(ACTIVE_STEP_STATUSES, r.status));
    if (maxConcurrency !== undefined) expect(activeOwn.length).toBeLessThanOrEqual(maxConcurrency);
    for (const s of definition.steps) {
      const activeItems = runs.filter(
        (r) => r.step_id === s.id && r.item_index >= 0 && isIn(ACTIVE_STEP_STATUSES, r.status),
      );
      expect(activeItems.length).toBeLessThanOrEqual(s.for_each_concurrency);
    }

    if (changed) continue;
    if (decision.outcome.kind === 'iteration_done') {
      return result(decision.outcome);
    }
    // Idle: something must be in flight, else the execution would hang.
    const working = runs.filter(
      (r) =>
        isIn(ACTIVE_STEP_STATUSES, r.status) &&
        !(r.item_index < 0 && byId.get(r.step_id)?.for_each),
    );
    expect(working.length, 'scheduler stalled').toBeGreaterThan(0);
    const allWaiting = working.every((r) => r.status === 'waiting');
    expect(decision.outcome.kind).toBe(allWaiting ? 'waiting' : 'running');
    const run = working[Math.floor(random() * working.length)] as RunState;
    if (run.status === 'queued') {
      run.status = 'running';
    } else if (run.status === 'running' && random() < 0.2) {
      run.status = 'waiting';
    } else {
      run.status = random() < options.failure ? 'failed' : 'completed';
    }
  }
  throw new Error('simulation did not finish');
}

describe('schedule: random workflows', () => {
  it('runs every step exactly once, after all its dependencies completed', () => {
    for (let seed = 1; seed <= 300; seed += 1) {
      const random = prng(seed);
      const definition = randomWorkflow(random, { continueOnError: 0, forEach: 0.2 });
      const result = simulate(definition, random, { conditionFalse: 0, failure: 0 });
      expect(result.outcome, `seed ${seed}`).toEqual({ kind: 'iteration_done' });
      expect([...result.started].sort(), `seed ${seed}`).toEqual(
        definition.steps.map((s) => s.id).sort(),
      );
      for (const s of definition.steps) {
        expect(result.final.get(s.id), `seed ${seed}`).toBe('completed');
        const position = result.started.indexOf(s.id);
        for (const dependency of s.depends_on) {
          expect(result.started.indexOf(dependency), `seed ${seed}`).toBeLessThan(position);
        }
      }
    }
  });

  it('propagates skips only through declared dependencies and always terminates', () => {
    for (let seed = 1; seed <= 300; seed += 1) {
      const random = prng(seed * 7919);
      const definition = randomWorkflow(random, { continueOnError: 0.5, forEach: 0.2 });
      const result = simulate(definition, random, { conditionFalse: 0.3, failure: 0.15 });
      if (result.outcome.kind === 'failed') {
        const failed = result.outcome.step_id;
        expect(result.final.get(failed), `seed ${seed}`).toBe('failed');
        expect(definition.steps.find((s) => s.id === failed)?.continue_on_error).toBe(false);
        continue;
      }
      expect(result.outcome, `seed ${seed}`).toEqual({ kind: 'iteration_done' });
      for (const s of definition.steps) {
        const final = result.final.get(s.id) as StepStatus;
        expect(isIn(TERMINAL_STEP_STATUSES, final), `seed ${seed} ${s.id}`).toBe(true);
        if (final === 'failed') expect(s.continue_on_error, `seed ${seed}`).toBe(true);
        if (result.propagated.has(s.id)) {
          expect(s.implicit_dependencies, `seed ${seed}`).toBe(false);
          expect(s.depends_on.every((d) => result.final.get(d) === 'skipped')).toBe(true);
        }
        // Every step either ran, had a false condition, or lost its whole branch.
        const ran = result.started.includes(s.id);
        expect(
          [ran, result.conditionSkipped.has(s.id), result.propagated.has(s.id)].filter(Boolean),
          `seed ${seed} ${s.id}`,
        ).toHaveLength(1);
      }
    }
  });
});
