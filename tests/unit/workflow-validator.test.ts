import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import {
  deriveStepId,
  findCycles,
  validateWorkflow,
  type WorkflowDraft,
} from '../../src/core/workflow-validator.js';
import type { StepInput, WorkflowType } from '../../src/domain/workflow-definition.js';
import { stepInputSchema } from '../../src/domain/workflow-definition.js';
import { ValidationFailedError } from '../../src/errors.js';

const limits = loadConfig({});

/** A step as the request schema would hand it over, defaults applied. */
function step(name: string, extra: Partial<StepInput> = {}): StepInput {
  return stepInputSchema.parse({ name, step_type: 'noop', ...extra });
}

function draft(type: WorkflowType, steps: StepInput[], extra: Partial<WorkflowDraft> = {}) {
  return {
    name: 'Workflow',
    workflow_type: type,
    config: type === 'loop' ? { loop: { max_iterations: 3 } } : {},
    metadata: {},
    tags: [],
    steps,
    ...extra,
  } satisfies WorkflowDraft;
}

function problemsOf(input: WorkflowDraft): Array<{ path: string; message: string }> {
  try {
    validateWorkflow(input, limits);
  } catch (error) {
    if (error instanceof ValidationFailedError) return error.errors;
    throw error;
  }
  return [];
}

describe('deriveStepId', () => {
  it('slugs names', () => {
    expect(deriveStepId('Data Validation', 0)).toBe('data_validation');
    expect(deriveStepId('  Send e-mail (v2)!  ', 3)).toBe('send_e_mail_v2');
    expect(deriveStepId('Café Crème', 0)).toBe('cafe_creme');
  });

  it('falls back to the position when nothing is left', () => {
    expect(deriveStepId('!!!', 4)).toBe('step_5');
    expect(deriveStepId('日本語', 0)).toBe('step_1');
  });

  it('keeps ids bounded', () => {
    expect(deriveStepId('a'.repeat(500), 0)).toHaveLength(200);
  });
});

describe('findCycles', () => {
  it('finds none in a DAG', () => {
    expect(
      findCycles([
        { id: 'a', depends_on: [] },
        { id: 'b', depends_on: ['a'] },
        { id: 'c', depends_on: ['a', 'b'] },
      ]),
    ).toEqual([]);
  });

  it('names each cycle as a path back to its start', () => {
    expect(
      findCycles([
        { id: 'a', depends_on: ['c'] },
        { id: 'b', depends_on: ['a'] },
        { id: 'c', depends_on: ['b'] },
      ]),
    ).toEqual([['a', 'c', 'b', 'a']]);
  });

  it('finds a self loop and separate cycles', () => {
    const cycles = findCycles([
      { id: 'a', depends_on: ['a'] },
      { id: 'b', depends_on: ['c'] },
      { id: 'c', depends_on: ['b'] },
    ]);
    expect(cycles).toEqual([
      ['a', 'a'],
      ['b', 'c', 'b'],
    ]);
  });

  it('ignores edges to unknown steps (reported elsewhere)', () => {
    expect(findCycles([{ id: 'a', depends_on: ['ghost'] }])).toEqual([]);
  });
});

describe('validateWorkflow: implicit dependencies', () => {
  const three = () => [step('One'), step('Two'), step('Three')];

  for (const type of ['sequential', 'conditional', 'event_driven', 'loop'] as const) {
    it(`${type} chains each step to the previous one`, () => {
      const definition = validateWorkflow(draft(type, three()), limits);
      expect(definition.steps.map((item) => item.depends_on)).toEqual([[], ['one'], ['two']]);
      expect(definition.steps.map((item) => item.dependencies)).toEqual([null, null, null]);
      expect(definition.steps.map((item) => item.implicit_dependencies)).toEqual([
        true,
        true,
        true,
      ]);
    });
  }

  it('parallel has no implicit dependencies', () => {
    const definition = validateWorkflow(draft('parallel', three()), limits);
    expect(definition.steps.map((item) => item.depends_on)).toEqual([[], [], []]);
    expect(definition.steps.every((item) => !item.implicit_dependencies)).toBe(true);
  });

  it('declared dependencies replace the implicit chain, by id or by name', () => {
    const definition = validateWorkflow(
      draft('sequential', [
        step('One'),
        step('Two', { dependencies: [] }),
        step('Three', { dependencies: ['One', 'two'] }),
      ]),
      limits,
    );
    expect(definition.steps.map((item) => item.depends_on)).toEqual([[], [], ['one', 'two']]);
    expect(definition.steps.map((item) => item.dependencies)).toEqual([null, [], ['one', 'two']]);
    expect(definition.steps[2]?.implicit_dependencies).toBe(false);
  });

  it('drops repeated references to the same step', () => {
    const definition = validateWorkflow(
      draft('parallel', [step('One'), step('Two', { dependencies: ['one', 'One'] })]),
      limits,
    );
    expect(definition.steps[1]?.depends_on).toEqual(['one']);
  });

  it('applies step defaults', () => {
    const [only] = validateWorkflow(draft('sequential', [step('Only')]), limits).steps;
    expect(only).toMatchObject({
      id: 'only',
      agent_id: null,
      config: {},
      condition: null,
      for_each: null,
      for_each_concurrency: 10,
      timeout_seconds: 300,
      retry_count: 3,
      retry_backoff: { type: 'exponential', delay_ms: 1000, max_delay_ms: 60000 },
      continue_on_error: false,
      limits: [],
    });
  });
});

describe('validateWorkflow: problems', () => {
  it('reports a missing dependency, a self dependency and a cycle together', () => {
    const problems = problemsOf(
      draft('parallel', [
        step('A', { id: 'a', dependencies: ['b'] }),
        step('B', { id: 'b', dependencies: ['a', 'ghost'] }),
        step('C', { id: 'c', dependencies: ['c'] }),
      ]),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        { path: 'steps[1].dependencies[1]', message: expect.stringContaining('ghost') },
        { path: 'steps[2].dependencies[0]', message: expect.stringContaining('itself') },
        { path: 'steps[0].dependencies', message: 'dependency cycle: a -> b -> a' },
      ]),
    );
  });

  it('reports every limit', () => {
    const problems = problemsOf(
      draft(
        'parallel',
        Array.from({ length: 101 }, (_, index) => step(`Step ${index}`)),
        {
          name: 'n'.repeat(256),
          description: 'd'.repeat(1001),
          config: { blob: 'x'.repeat(1024 * 1024) },
          metadata: { blob: 'x'.repeat(1024 * 1024) },
          tags: Array.from({ length: 21 }, (_, index) => `t${index}`),
        },
      ),
    );
    expect(problems.map((problem) => problem.path)).toEqual(
      expect.arrayContaining(['name', 'description', 'config', 'metadata', 'tags', 'steps']),
    );
  });

  it('counts distinct tags only', () => {
    expect(problemsOf(draft('parallel', [], { tags: Array(30).fill('same') }))).toEqual([]);
  });

  it('needs max_iterations for a loop', () => {
    expect(problemsOf(draft('loop', [], { config: { loop: { condition: 'true' } } }))).toEqual([
      { path: 'config.loop.max_iterations', message: 'is required for a loop' },
    ]);
    expect(problemsOf(draft('loop', [], { config: {} }))[0]?.path).toBe('config.loop');
  });

  it('checks expressions', () => {
    const problems = problemsOf(
      draft('conditional', [step('A', { condition: 'input.amount >', for_each: '[1,2' })]),
    );
    expect(problems.map((problem) => problem.path)).toEqual([
      'steps[0].condition',
      'steps[0].for_each',
    ]);
  });

  it('accepts a valid expression', () => {
    expect(
      problemsOf(draft('conditional', [step('A', { condition: 'input.amount > 100' })])),
    ).toEqual([]);
  });
});
