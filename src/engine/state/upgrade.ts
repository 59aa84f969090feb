import type { ExecutionRow } from '../../domain/execution.js';
import type { ExecutionStatus } from '../../domain/statuses.js';
import {
  ExecutionNotFoundError,
  ExecutionStateError,
  UpgradeConflictError,
  WorkflowVersionNotFoundError,
} from '../../errors.js';
import type { Queryable } from '../../store/db.js';
import { recordAction } from '../../store/execution-actions.js';
import * as upgrades from '../../store/execution-upgrades.js';
import * as executions from '../../store/executions.js';
import * as stepRuns from '../../store/step-runs.js';
import { planUpgrade, type UpgradeConflict, type UpgradePlan } from '../upgrade-plan.js';
import { type Effects, noEffects } from './effects.js';
import { withLockedExecution } from './lock.js';
import type { Machine } from './machine.js';

/**
 * Moving an execution to another version of its workflow (README "Versions, upgrades and
 * edits", docs/ARCHITECTURE.md "Upgrades"): under the execution's row lock, the pure gate
 * (upgrade-plan.ts) decides, and an allowed upgrade changes the pinned version, adds and
 * removes pending runs of the current iteration and leaves the rest to an advance job, as
 * retry and resume do (operator-actions.ts). One transaction: it applies whole or not at all.
 */

/** Statuses an execution may be upgraded in: it has started and is not over for good. */
export const UPGRADABLE_STATUSES: readonly ExecutionStatus[] = [
  'running',
  'waiting',
  'paused',
  'failed',
];

export interface UpgradeRequest {
  /** Default: the workflow's current version. */
  toVersion?: number | undefined;
  dryRun: boolean;
}

export type UpgradeOutcome =
  | { kind: 'planned'; from: number; to: number; plan: UpgradePlan }
  | { kind: 'conflicts'; to: number; conflicts: UpgradeConflict[] }
  | { kind: 'missing_version'; to: number };

/** The gate and, unless a dry run or refused, the change; in the caller's transaction, locked. */
export async function upgradeIn(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  request: UpgradeRequest,
  effects: Effects,
): Promise<UpgradeOutcome> {
  const head = await executions.findWorkflowHead(tx, execution.workflow_id);
  const to = request.toVersion ?? head?.version ?? execution.workflow_version;
  const target = await executions.loadDefinition(tx, execution.workflow_id, to);
  if (!target) return { kind: 'missing_version', to };
  const current = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  const decision = planUpgrade(current, target, await upgrades.ownRunStates(tx, execution.id));
  if (!decision.allowed) return { kind: 'conflicts', to, conflicts: decision.conflicts };
  const outcome = {
    kind: 'planned' as const,
    from: execution.workflow_version,
    to,
    plan: decision.plan,
  };
  if (request.dryRun || to === execution.workflow_version) return outcome;
  const { plan } = decision;
  await upgrades.setWorkflowVersion(tx, execution.id, to);
  await upgrades.deletePendingRuns(tx, execution.id, execution.current_iteration, plan.removed);
  if (plan.added.length > 0) {
    await stepRuns.insertIterationRuns(tx, execution.id, execution.current_iteration, plan.added);
  }
  // What the new version makes ready (or ends) is decided by a worker's advance job, never in
  // this request (docs/ARCHITECTURE.md, "Life of a request"); a failed execution waits for a
  // retry, a paused one for its resume.
  effects.advanceExecutions.push(execution.id);
  return outcome;
}

/** One execution's upgrade asked alone: refused (404, 409) unless its status and the gate allow. */
export async function upgrade(
  m: Machine,
  id: string,
  request: UpgradeRequest,
  asked: { actor: string | null; reason: string | null },
): Promise<{ outcome: Extract<UpgradeOutcome, { kind: 'planned' }>; effects: Effects }> {
  const effects = noEffects();
  const outcome = await withLockedExecution(
    m.options.pool,
    id,
    UPGRADABLE_STATUSES,
    async (tx, execution) => {
      const found = await upgradeIn(m, tx, execution, request, effects);
      if (found.kind === 'missing_version') {
        throw new WorkflowVersionNotFoundError(execution.workflow_id, found.to);
      }
      if (found.kind === 'conflicts') {
        throw new UpgradeConflictError(
          id,
          found.to,
          found.conflicts.map((conflict) => ({
            path: `steps.${conflict.step_id}`,
            message: conflict.message,
          })),
        );
      }
      if (!request.dryRun && found.from !== found.to) {
        await recordAction(tx, {
          executionId: id,
          action: 'upgrade',
          actor: asked.actor,
          reason: asked.reason,
          detail: { from_version: found.from, to_version: found.to, ...found.plan },
        });
      }
      return found;
    },
    (found) =>
      found
        ? new ExecutionStateError(
            id,
            found.status,
            'only a running, waiting, paused or failed execution can be upgraded',
          )
        : new ExecutionNotFoundError(id),
  );
  // withLockedExecution answers null only without a refusal; this one always refuses.
  if (outcome === null) throw new ExecutionNotFoundError(id);
  return { outcome, effects };
}
