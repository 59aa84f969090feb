import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { validateWorkflow } from '../../src/core/workflow-validator.js';
import {
  type StepInput,
  stepInputSchema,
  type WorkflowDefinition,
} from '../../src/domain/workflow-definition.js';
import { planUpgrade, versionSummary } from '../../src/engine/upgrade-plan.js';

/** The compatibility gate of upgrades and the summary of a version (pure). */

const limits = loadConfig({});

function step(id: string, extra: Partial<StepInput> = {}): StepInput {
  return stepInputSchema.parse({ id, name: id, step_type: 'noop', ...extra });
}

function parallel(steps: StepInput[], config: Record<string, unknown> = {}): WorkflowDefinition {
  return validateWorkflow(
    { name: 'w', workflow_type: 'parallel', config, metadata: {}, tags: [], steps },
    limits,
  );
}

const v1 = parallel([
  step('a'),
  step('b'),
  step('wait', { step_type: 'wait_for_event', config: { event: 'x' }, dependencies: ['a'] }),
  step('later', { dependencies: ['wait'] }),
  step('tail', { dependencies: ['wait'], config: { v: 1 } }),
]);
const runs = [
  { step_id: 'a', status: 'completed' as const, attempt: 1 },
  { step_id: 'b', status: 'completed' as const, attempt: 1 },
  { step_id: 'wait', status: 'waiting' as const, attempt: 1 },
  { step_id: 'later', status: 'pending' as const, attempt: 0 },
  { step_id: 'tail', status: 'pending' as const, attempt: 0 },
];

describe('planUpgrade', () => {
  it('plans kept, added, removed and replanned steps when nothing started conflicts', () => {
    const v2 = parallel([
      step('a'),
      step('b'),
      step('wait', { step_type: 'wait_for_event', config: { event: 'x' }, dependencies: ['a'] }),
      step('tail', { dependencies: ['wait'], config: { v: 2 } }),
      step('after', { dependencies: ['wait'] }),
    ]);
    expect(planUpgrade(v1, v2, runs)).toEqual({
      allowed: true,
      plan: { kept: ['a', 'b', 'wait'], added: ['after'], removed: ['later'], replanned: ['tail'] },
    });
  });

  it('lists every conflict: removed, retyped, and a finished step gaining a dependency', () => {
    const v2 = parallel([
      step('b', { dependencies: ['c'] }),
      step('c'),
      step('wait', { step_type: 'delay', config: { seconds: 1 } }),
    ]);
    const decision = planUpgrade(v1, v2, runs);
    expect(decision.allowed).toBe(false);
    if (decision.allowed) return;
    expect(decision.conflicts.map((conflict) => conflict.step_id)).toEqual(['a', 'b', 'wait']);
  });

  it('lets an unfinished step gain dependencies and a pending step go', () => {
    const v2 = parallel([
      step('a'),
      step('b'),
      step('c'),
      step('wait', {
        step_type: 'wait_for_event',
        config: { event: 'x' },
        dependencies: ['a', 'c'],
      }),
    ]);
    const decision = planUpgrade(v1, v2, runs);
    expect(decision.allowed).toBe(true);
  });

  it('counts a step that ran in any iteration, and a failed one as ended', () => {
    const v2 = parallel([step('b', { dependencies: ['a'] }), step('a')]);
    const decision = planUpgrade(v1, v2, [
      { step_id: 'a', status: 'pending', attempt: 0 },
      { step_id: 'b', status: 'failed', attempt: 1 },
      { step_id: 'wait', status: 'pending', attempt: 0 },
      { step_id: 'later', status: 'completed', attempt: 1 },
      // Cancelled before its first attempt when the execution failed: it never ran.
      { step_id: 'tail', status: 'cancelled', attempt: 0 },
    ]);
    expect(decision).toEqual({
      allowed: false,
      conflicts: [
        { step_id: 'b', message: expect.stringContaining('depend on a') },
        { step_id: 'later', message: expect.stringContaining('removes it') },
      ],
    });
  });
});

describe('versionSummary', () => {
  it('names added, removed and changed steps and a config change, ignoring key order', () => {
    expect(versionSummary(null, v1)).toBe('initial version');
    const reordered = JSON.parse(JSON.stringify(v1)) as WorkflowDefinition;
    reordered.steps = reordered.steps.map(
      (s) => Object.fromEntries(Object.entries(s).reverse()) as typeof s,
    );
    expect(versionSummary(v1, reordered)).toBe('no change to steps or config');
    const v2 = parallel([step('a', { config: { x: 1 } }), step('b'), step('z')], { priority: 2 });
    expect(versionSummary(v1, v2)).toBe(
      'steps added: z; removed: wait, later, tail; changed: a; config changed',
    );
  });
});
