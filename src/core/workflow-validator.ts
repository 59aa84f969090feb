import type { Config } from '../config.js';
import { MAX_PRIORITY } from '../domain/execution.js';
import { labelsSchema } from '../domain/labels.js';
import {
  DEFAULT_FOR_EACH_CONCURRENCY,
  DEFAULT_RETRY_BACKOFF,
  MAX_RETENTION_DAYS,
  retentionDaysSchema,
  type StepDefinition,
  type StepInput,
  type WorkflowDefinition,
  type WorkflowType,
} from '../domain/workflow-definition.js';
import { parseSchedule } from '../engine/cron-schedule.js';
import { checkExpression } from '../engine/expressions.js';
import { getStepHandler } from '../engine/steps/registry.js';
import type { StepTypeDefinition } from '../engine/steps/types.js';
import { childPath, findTemplateProblems, isTemplate } from '../engine/templates.js';
import { type FieldProblem, ValidationFailedError } from '../errors.js';
import { flowControlProblems } from './flow-control-rules.js';

export type WorkflowLimits = Pick<
  Config,
  | 'MAX_STEPS'
  | 'MAX_STEP_NAME_LENGTH'
  | 'MAX_WORKFLOW_NAME_LENGTH'
  | 'MAX_DESCRIPTION_LENGTH'
  | 'MAX_CONFIG_BYTES'
  | 'MAX_METADATA_BYTES'
  | 'MAX_TAGS'
>;

/** The parts of a workflow the validator judges, after request parsing and PUT merging. */
export interface WorkflowDraft {
  name: string;
  description?: string | null | undefined;
  workflow_type: WorkflowType;
  config: Record<string, unknown>;
  metadata: Record<string, unknown>;
  tags: string[];
  steps: StepInput[];
}

const MAX_LOOP_ITERATIONS = 10_000;

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}

/** "Data Validation" -> "data_validation": a readable, stable key for steps given no id. */
export function deriveStepId(name: string, index: number): string {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    // Drop the combining marks NFKD splits off, so "Crème" becomes "creme", not "cre_me".
    .replace(/\p{M}+/gu, '')
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 200);
  return slug || `step_${index + 1}`;
}

/** Every dependency cycle, each named as a path that returns to its start. */
export function findCycles(
  steps: ReadonlyArray<Pick<StepDefinition, 'id' | 'depends_on'>>,
): string[][] {
  const edges = new Map(steps.map((step) => [step.id, step.depends_on]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[][] = [];
  const path: string[] = [];

  const visit = (id: string): void => {
    state.set(id, 'visiting');
    path.push(id);
    for (const next of edges.get(id) ?? []) {
      const seen = state.get(next);
      if (seen === 'visiting') {
        cycles.push([...path.slice(path.indexOf(next)), next]);
      } else if (seen === undefined && edges.has(next)) {
        visit(next);
      }
    }
    path.pop();
    state.set(id, 'done');
  };

  for (const step of steps) {
    if (!state.has(step.id)) visit(step.id);
  }
  return cycles;
}

function expressionProblem(path: string, source: unknown): FieldProblem[] {
  if (source === undefined || source === null) return [];
  if (typeof source !== 'string' || source.trim() === '') {
    return [{ path, message: 'must be a JSONata expression string' }];
  }
  const message = checkExpression(source);
  return message ? [{ path, message: `invalid expression: ${message}` }] : [];
}

function positiveIntegerProblem(path: string, value: unknown, max: number): FieldProblem[] {
  if (value === undefined) return [];
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max
    ? []
    : [{ path, message: `must be an integer from 1 to ${max}` }];
}

function retentionProblem(value: unknown): FieldProblem[] {
  if (value === undefined || retentionDaysSchema.safeParse(value).success) return [];
  return [
    {
      path: 'config.retention_days',
      message: `must be an integer from 0 (keep forever) to ${MAX_RETENTION_DAYS}`,
    },
  ];
}

function checkWorkflowConfig(type: WorkflowType, config: Record<string, unknown>): FieldProblem[] {
  const problems: FieldProblem[] = [
    ...positiveIntegerProblem('config.max_concurrency', config.max_concurrency, 10_000),
    ...positiveIntegerProblem('config.priority', config.priority, MAX_PRIORITY),
    ...positiveIntegerProblem('config.timeout_seconds', config.timeout_seconds, 31_536_000),
    ...retentionProblem(config.retention_days),
    ...expressionProblem('config.output', config.output),
    ...flowControlProblems(config),
  ];
  const loop = config.loop;
  if (type === 'loop') {
    if (typeof loop !== 'object' || loop === null || Array.isArray(loop)) {
      problems.push({
        path: 'config.loop',
        message: 'a loop workflow needs config.loop with max_iterations (and usually a condition)',
      });
    } else {
      const { condition, max_iterations: maxIterations } = loop as Record<string, unknown>;
      if (maxIterations === undefined) {
        problems.push({ path: 'config.loop.max_iterations', message: 'is required for a loop' });
      } else {
        problems.push(
          ...positiveIntegerProblem(
            'config.loop.max_iterations',
            maxIterations,
            MAX_LOOP_ITERATIONS,
          ),
        );
      }
      problems.push(...expressionProblem('config.loop.condition', condition));
    }
  }
  const trigger = config.trigger;
  if (trigger !== undefined) {
    if (typeof trigger !== 'object' || trigger === null || Array.isArray(trigger)) {
      problems.push({
        path: 'config.trigger',
        message: 'must be an object {event?, filter?, schedule?, labels?}',
      });
    } else {
      const { event, filter } = trigger as Record<string, unknown>;
      if (event !== undefined && (typeof event !== 'string' || event.length === 0)) {
        problems.push({ path: 'config.trigger.event', message: 'must be a non-empty string' });
      }
      problems.push(...expressionProblem('config.trigger.filter', filter));
      const { schedule, labels } = trigger as Record<string, unknown>;
      if (schedule !== undefined) {
        const parsed = parseSchedule(schedule);
        if ('problem' in parsed)
          problems.push({ path: 'config.trigger.schedule', message: parsed.problem });
      }
      if (labels !== undefined) {
        const parsed = labelsSchema.safeParse(labels);
        for (const issue of parsed.error?.issues ?? []) {
          const at = issue.path.length > 0 ? `.${issue.path.join('.')}` : '';
          problems.push({ path: `config.trigger.labels${at}`, message: issue.message });
        }
      }
    }
  }
  return problems;
}

/** Whether the value at `path` in `config`, or one of its parents, is a `{% %}` template. */
function underTemplate(config: unknown, path: readonly PropertyKey[]): boolean {
  let value = config;
  for (const key of path) {
    if (typeof value === 'string' && isTemplate(value)) return true;
    if (typeof value !== 'object' || value === null || typeof key === 'symbol') return false;
    value = (value as Record<string | number, unknown>)[key];
  }
  return typeof value === 'string' && isTemplate(value);
}

/**
 * The step type's own rules for its config (its configSchema). A template may stand for any
 * value, known only when the step runs, so nothing at or under one is judged here; the
 * handler checks the resolved config again.
 */
function configProblems(
  definition: StepTypeDefinition | undefined,
  config: Record<string, unknown>,
  at: string,
): FieldProblem[] {
  const parsed = definition?.configSchema?.safeParse(config);
  if (!parsed || parsed.success) return [];
  return parsed.error.issues
    .filter((issue) => !underTemplate(config, issue.path))
    .map((issue) => ({
      path: issue.path.reduce<string>(
        (path, key) => childPath(path, typeof key === 'number' ? key : String(key)),
        `${at}.config`,
      ),
      message: issue.message,
    }));
}

/** A step's named limits: each name once, each key a JSONata expression. Whether the limits
 * exist is the use case's question (it needs the store). */
function stepLimitProblems(step: StepInput, at: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const firstIndexOfName = new Map<string, number>();
  (step.limits ?? []).forEach((limit, index) => {
    const first = firstIndexOfName.get(limit.name);
    if (first === undefined) {
      firstIndexOfName.set(limit.name, index);
    } else {
      problems.push({
        path: `${at}.limits[${index}].name`,
        message: `limit "${limit.name}" is already named by ${at}.limits[${first}]`,
      });
    }
    problems.push(...expressionProblem(`${at}.limits[${index}].key`, limit.key));
  });
  return problems;
}

function checkStep(step: StepInput, index: number, limits: WorkflowLimits): FieldProblem[] {
  const at = `steps[${index}]`;
  const problems: FieldProblem[] = [];
  if (step.name.length > limits.MAX_STEP_NAME_LENGTH) {
    problems.push({
      path: `${at}.name`,
      message: `must be at most ${limits.MAX_STEP_NAME_LENGTH} characters`,
    });
  }
  if (jsonBytes(step.config) > limits.MAX_CONFIG_BYTES) {
    problems.push({
      path: `${at}.config`,
      message: `must be at most ${limits.MAX_CONFIG_BYTES} bytes as JSON`,
    });
  }
  problems.push(...expressionProblem(`${at}.condition`, step.condition));
  problems.push(...expressionProblem(`${at}.for_each`, step.for_each));
  problems.push(...stepLimitProblems(step, at));
  // Unknown types are external tasks: their config belongs to their worker, so no rules.
  const definition = getStepHandler(step.step_type);
  for (const field of definition?.expressionFields ?? []) {
    problems.push(...expressionProblem(`${at}.config.${field}`, step.config[field]));
  }
  problems.push(...configProblems(definition, step.config, at));
  problems.push(...findTemplateProblems(step.config, `${at}.config`));
  return problems;
}

/**
 * Checks a workflow against docs/ARCHITECTURE.md ("Workflows and expressions") and returns the
 * definition the engine runs. Throws ValidationFailedError listing every problem found, so a
 * caller fixes all at once.
 */
export function validateWorkflow(draft: WorkflowDraft, limits: WorkflowLimits): WorkflowDefinition {
  const problems: FieldProblem[] = [];
  if (draft.name.length > limits.MAX_WORKFLOW_NAME_LENGTH) {
    problems.push({
      path: 'name',
      message: `must be at most ${limits.MAX_WORKFLOW_NAME_LENGTH} characters`,
    });
  }
  if ((draft.description ?? '').length > limits.MAX_DESCRIPTION_LENGTH) {
    problems.push({
      path: 'description',
      message: `must be at most ${limits.MAX_DESCRIPTION_LENGTH} characters`,
    });
  }
  if (jsonBytes(draft.config) > limits.MAX_CONFIG_BYTES) {
    problems.push({
      path: 'config',
      message: `must be at most ${limits.MAX_CONFIG_BYTES} bytes as JSON`,
    });
  }
  if (jsonBytes(draft.metadata) > limits.MAX_METADATA_BYTES) {
    problems.push({
      path: 'metadata',
      message: `must be at most ${limits.MAX_METADATA_BYTES} bytes as JSON`,
    });
  }
  if (new Set(draft.tags).size > limits.MAX_TAGS) {
    problems.push({ path: 'tags', message: `at most ${limits.MAX_TAGS} tags are allowed` });
  }
  if (draft.steps.length > limits.MAX_STEPS) {
    problems.push({ path: 'steps', message: `at most ${limits.MAX_STEPS} steps are allowed` });
  }
  problems.push(...checkWorkflowConfig(draft.workflow_type, draft.config));

  const ids = draft.steps.map((step, index) => step.id ?? deriveStepId(step.name, index));
  const firstIndexOfId = new Map<string, number>();
  ids.forEach((id, index) => {
    const first = firstIndexOfId.get(id);
    if (first === undefined) {
      firstIndexOfId.set(id, index);
    } else {
      const given = draft.steps[index]?.id !== undefined;
      problems.push({
        path: `steps[${index}].${given ? 'id' : 'name'}`,
        message: `step id "${id}" is already used by steps[${first}]${given ? '' : ' (ids are derived from names when absent; give one an explicit id)'}`,
      });
    }
  });
  const idByName = new Map<string, string>();
  draft.steps.forEach((step, index) => {
    if (!idByName.has(step.name)) idByName.set(step.name, ids[index] as string);
  });

  const chained = draft.workflow_type !== 'parallel';
  const steps: StepDefinition[] = draft.steps.map((step, index) => {
    const id = ids[index] as string;
    problems.push(...checkStep(step, index, limits));
    let declared: string[] | null = null;
    if (step.dependencies !== undefined) {
      declared = [];
      step.dependencies.forEach((reference, depIndex) => {
        const target = firstIndexOfId.has(reference) ? reference : idByName.get(reference);
        const path = `steps[${index}].dependencies[${depIndex}]`;
        if (target === undefined) {
          problems.push({ path, message: `no step has the id or name "${reference}"` });
        } else if (target === id) {
          problems.push({ path, message: `step "${id}" cannot depend on itself` });
        } else if (!declared?.includes(target)) {
          declared?.push(target);
        }
      });
    }
    const previous = index > 0 ? ids[index - 1] : undefined;
    const implicit = declared === null;
    return {
      id,
      name: step.name,
      step_type: step.step_type,
      agent_id: step.agent_id ?? null,
      config: step.config,
      dependencies: declared,
      depends_on: declared ?? (chained && previous !== undefined ? [previous] : []),
      implicit_dependencies: implicit && chained,
      condition: step.condition ?? null,
      for_each: step.for_each ?? null,
      for_each_concurrency: step.for_each_concurrency ?? DEFAULT_FOR_EACH_CONCURRENCY,
      timeout_seconds: step.timeout_seconds,
      retry_count: step.retry_count,
      retry_backoff: step.retry_backoff ?? DEFAULT_RETRY_BACKOFF,
      continue_on_error: step.continue_on_error,
      limits: (step.limits ?? []).map((limit) => ({ name: limit.name, key: limit.key ?? null })),
    };
  });

  for (const cycle of findCycles(steps)) {
    problems.push({
      path: `steps[${firstIndexOfId.get(cycle[0] as string)}].dependencies`,
      message: `dependency cycle: ${cycle.join(' -> ')}`,
    });
  }

  if (problems.length > 0) throw new ValidationFailedError(problems);
  return { workflow_type: draft.workflow_type, config: draft.config, steps };
}
