import type { StepStatus } from '../domain/statuses.js';
import { isIn, TERMINAL_STEP_STATUSES } from '../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../domain/workflow-definition.js';

/**
 * Pure: what moving an execution to another version of its workflow would do, and whether it
 * is allowed (README "Versions, upgrades and edits", docs/ARCHITECTURE.md "Upgrades"). No I/O:
 * the state machine (state/upgrade.ts) reads the runs and applies the plan under the
 * execution's lock.
 */

/** Steps of two versions compared by id; `changed` are in both with a different definition. */
export interface StepDiff {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

/**
 * JSON with object keys sorted: a definition read back from jsonb has its keys in jsonb's
 * order, not the order the validator wrote them, and must still compare equal.
 */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === 'object' && item !== null && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

export function diffSteps(
  from: readonly StepDefinition[],
  to: readonly StepDefinition[],
): StepDiff {
  const before = new Map(from.map((step) => [step.id, step]));
  const after = new Set(to.map((step) => step.id));
  const diff: StepDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const step of to) {
    const old = before.get(step.id);
    if (old === undefined) diff.added.push(step.id);
    else if (canonical(old) === canonical(step)) diff.unchanged.push(step.id);
    else diff.changed.push(step.id);
  }
  for (const step of from) if (!after.has(step.id)) diff.removed.push(step.id);
  return diff;
}

/** The one-line summary a version records of what changed against the version before it. */
export function versionSummary(
  previous: WorkflowDefinition | null,
  next: WorkflowDefinition,
): string {
  if (previous === null) return 'initial version';
  const diff = diffSteps(previous.steps, next.steps);
  const parts = [
    diff.added.length > 0 ? `steps added: ${diff.added.join(', ')}` : null,
    diff.removed.length > 0 ? `removed: ${diff.removed.join(', ')}` : null,
    diff.changed.length > 0 ? `changed: ${diff.changed.join(', ')}` : null,
    canonical(previous.config) !== canonical(next.config) ||
    previous.workflow_type !== next.workflow_type
      ? 'config changed'
      : null,
  ].filter((part): part is string => part !== null);
  // Name, description, tags and status are not part of a version's definition.
  return parts.length > 0 ? parts.join('; ') : 'no change to steps or config';
}

/** A step's own run as the gate sees it: the step and how far it got (any iteration). */
export interface RunState {
  step_id: string;
  status: StepStatus;
  /** 0: never attempted. */
  attempt: number;
}

/**
 * Pending, or cancelled before its first attempt: an execution's end cancels its pending runs
 * (a failed execution has them), and a retry makes them pending again, so they never ran.
 */
export function neverStarted(run: RunState): boolean {
  return run.status === 'pending' || (run.status === 'cancelled' && run.attempt === 0);
}

/** One reason the upgrade is refused, about one step. */
export interface UpgradeConflict {
  step_id: string;
  message: string;
}

export interface UpgradePlan {
  /** In both versions, run as before. */
  kept: string[];
  /** Only in the target: pending runs are added to the current iteration. */
  added: string[];
  /** Only in the current version, never started: their pending runs are deleted. */
  removed: string[];
  /** In both, not started yet, with a changed definition: planned anew from the target. */
  replanned: string[];
}

export type UpgradeDecision =
  | { allowed: true; plan: UpgradePlan }
  | { allowed: false; conflicts: UpgradeConflict[] };

/**
 * The gate: allowed only when every step that has started or ended (a run not `pending`,
 * see neverStarted) exists in the target with the same id and step type, and no ended step gains a dependency
 * it did not have (its result was produced without it). Every conflict is listed.
 */
export function planUpgrade(
  from: WorkflowDefinition,
  to: WorkflowDefinition,
  runs: readonly RunState[],
): UpgradeDecision {
  const target = new Map(to.steps.map((step) => [step.id, step]));
  const current = new Map(from.steps.map((step) => [step.id, step]));
  const conflicts: UpgradeConflict[] = [];
  const touched = new Map<string, StepStatus>();
  for (const run of runs) {
    if (neverStarted(run)) continue;
    // A step that ended in one iteration and runs in another: what is unfinished counts most.
    const seen = touched.get(run.step_id);
    if (seen === undefined || isIn(TERMINAL_STEP_STATUSES, seen))
      touched.set(run.step_id, run.status);
  }
  for (const [stepId, status] of [...touched].sort(([a], [b]) => a.localeCompare(b))) {
    conflicts.push(...stepConflicts(stepId, status, current.get(stepId), target.get(stepId)));
  }
  if (conflicts.length > 0) return { allowed: false, conflicts };
  const diff = diffSteps(from.steps, to.steps);
  const replanned = diff.changed.filter((id) => !touched.has(id));
  return {
    allowed: true,
    plan: {
      kept: [...diff.unchanged, ...diff.changed.filter((id) => touched.has(id))],
      added: diff.added,
      removed: diff.removed,
      replanned,
    },
  };
}

function stepConflicts(
  stepId: string,
  status: StepStatus,
  now: StepDefinition | undefined,
  next: StepDefinition | undefined,
): UpgradeConflict[] {
  if (next === undefined) {
    return [{ step_id: stepId, message: `has a ${status} run but the target version removes it` }];
  }
  const conflicts: UpgradeConflict[] = [];
  if (now !== undefined && now.step_type !== next.step_type) {
    conflicts.push({
      step_id: stepId,
      message: `has a ${status} run as a ${now.step_type} step; the target version makes it a ${next.step_type} step`,
    });
  }
  if (isIn(TERMINAL_STEP_STATUSES, status)) {
    const had = new Set(now?.depends_on ?? []);
    const gained = next.depends_on.filter((id) => !had.has(id));
    if (gained.length > 0) {
      conflicts.push({
        step_id: stepId,
        message: `has ended (${status}) but the target version makes it depend on ${gained.join(', ')}`,
      });
    }
  }
  return conflicts;
}
