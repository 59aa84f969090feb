import type {
  ActionParams,
  ActionRule,
  BulkAction,
  ItemOutcome,
  SkipReason,
} from '../../domain/bulk-actions.js';
import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import {
  FINISHED_EXECUTION_STATUSES,
  isIn,
  UNFINISHED_EXECUTION_STATUSES,
} from '../../domain/statuses.js';
import { ExecutionNotFoundError, ExecutionStateError } from '../../errors.js';
import { type Queryable, withTransaction } from '../../store/db.js';
import { recordAction } from '../../store/execution-actions.js';
import { purgeFinishedExecutions } from '../../store/execution-purge.js';
import * as executions from '../../store/executions.js';
import { REOPENED_STEP_STATUSES } from '../../store/sql-statuses.js';
import * as stepRuns from '../../store/step-runs.js';
import { type Effects, jobOfRun, mergeEffects, noEffects } from './effects.js';
import { finish } from './finish.js';
import { withLockedExecution } from './lock.js';
import type { Machine } from './machine.js';
import { UPGRADABLE_STATUSES, upgradeIn } from './upgrade.js';

/**
 * What an operator asks of one execution (cancel, retry, pause, resume) and of many at once
 * (those, delete and upgrade, README "Operations"; upgrade alone is upgrade.ts). Each locks the execution and acts only when its
 * status allows: one asked alone refuses (404, 409); an item of a bulk operation is skipped
 * with the reason. The effects are applied once committed. Each action done is recorded, with
 * who asked and why, in the same transaction (README "History").
 */

/** Who asks for an action and why; recorded with it. */
export interface ActionRequest {
  actor: string | null;
  reason: string | null;
  /** The bulk operation the action is an item of. */
  operationId?: string;
  /** What the action needs besides the execution (an upgrade's target version). */
  params?: ActionParams;
}

/** What an action records of what it touched (the history's `detail`). */
export type ActionNote = Record<string, unknown>;

interface OperatorAction extends ActionRule {
  /** Why a single request is refused (409). */
  refusal: string;
  /** The change, in the transaction holding the execution's lock; a reason when it must not
   * happen after all. */
  change: (
    m: Machine,
    tx: Queryable,
    execution: ExecutionRow,
    effects: Effects,
    note: ActionNote,
    params: ActionParams,
  ) => Promise<SkipReason | undefined>;
}

/**
 * Reopens a failed, timed-out (or, edited, completed) execution: without `steps` its failed
 * runs run again, with them exactly those steps' runs. Shared by the retry below and the edited
 * retry (edit-retry.ts).
 */
export async function reopen(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  effects: Effects,
  steps?: readonly string[],
): Promise<void> {
  await executions.reopenExecution(tx, execution, steps);
  const { config } = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  // Under config.concurrency it takes a slot again only through admission, like a start.
  if (config.concurrency) await executions.setExecutionStatus(tx, execution.id, 'queued');
  // Its failed steps' conditions and for_each lists are decided by a worker's advance job,
  // not in this request (docs/ARCHITECTURE.md, "Life of a request").
  effects.advanceExecutions.push(execution.id);
  effects.changedWorkflows.push(execution.workflow_id);
}

/** A run as an action's record keeps it: what a retry replaced. */
export function runBefore(run: StepRunRow) {
  return { step_id: run.step_id, status: run.status, attempts: run.attempt, error: run.error };
}

const ACTIONS: Record<BulkAction, OperatorAction> = {
  cancel: {
    allowed: UNFINISHED_EXECUTION_STATUSES,
    skip: 'already_finished',
    refusal: 'only an unfinished execution can be cancelled',
    change: async (m, tx, execution, effects) => {
      await finish(
        m,
        tx,
        execution,
        { status: 'cancelled', error: 'Cancelled on request' },
        effects,
      );
      return undefined;
    },
  },
  retry: {
    allowed: ['failed', 'timed_out'],
    skip: 'not_failed',
    refusal: 'only a failed or timed-out execution can be retried',
    change: async (m, tx, execution, effects, note) => {
      // The runs it replaces: their last attempts live on only in this record.
      const runs = await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration);
      note.before = {
        runs: runs.filter((run) => isIn(REOPENED_STEP_STATUSES, run.status)).map(runBefore),
      };
      await reopen(m, tx, execution, effects);
      return undefined;
    },
  },
  pause: {
    allowed: ['running', 'waiting'],
    skip: 'not_running',
    refusal: 'only a running or waiting execution can be paused',
    change: async (_m, tx, execution) => {
      await executions.setExecutionStatus(tx, execution.id, 'paused');
      return undefined;
    },
  },
  resume: {
    allowed: ['paused'],
    skip: 'not_paused',
    refusal: 'only a paused execution can be resumed',
    change: async (_m, tx, execution, effects) => {
      await executions.setExecutionStatus(tx, execution.id, 'running');
      const resumed = { ...execution, status: 'running' as const };
      for (const run of await stepRuns.listHeldRuns(tx, execution.id)) {
        effects.jobs.push({
          ...jobOfRun(resumed, run),
          ...(run.wake_at ? { runAt: run.wake_at } : {}),
          // A sleeping run needs its wake-up, not a new attempt.
          ...(run.status === 'waiting' ? { wake: true } : {}),
        });
      }
      // What became ready while paused starts from a worker's advance job, as above.
      effects.advanceExecutions.push(execution.id);
      return undefined;
    },
  },
  delete: {
    allowed: FINISHED_EXECUTION_STATUSES,
    skip: 'unfinished',
    refusal: 'only a finished execution can be deleted',
    change: async (_m, tx, execution) => {
      // A parent still running may yet read its sub-workflow's result.
      const parent = execution.parent_execution_id
        ? await executions.getExecution(tx, execution.parent_execution_id)
        : null;
      if (parent && UNFINISHED_EXECUTION_STATUSES.includes(parent.status)) {
        return 'parent_unfinished';
      }
      const { deleted } = await purgeFinishedExecutions(tx, [execution.id]);
      return deleted.length > 0 ? undefined : 'has_unfinished_children';
    },
  },
  upgrade: {
    allowed: UPGRADABLE_STATUSES,
    skip: 'not_upgradable',
    refusal: 'only a running, waiting, paused or failed execution can be upgraded',
    change: async (m, tx, execution, effects, note, params) => {
      const request = { toVersion: params.to_version, dryRun: false };
      const outcome = await upgradeIn(m, tx, execution, request, effects);
      if (outcome.kind === 'conflicts') return 'incompatible';
      if (outcome.kind === 'missing_version') return 'no_such_version';
      note.from_version = outcome.from;
      note.to_version = outcome.to;
      return undefined;
    },
  },
};

/** One operator action on one execution, refused (404, 409) unless its status allows it. */
export async function act(
  m: Machine,
  action: Exclude<BulkAction, 'delete' | 'upgrade'>,
  id: string,
  request: ActionRequest,
): Promise<Effects> {
  const rule = ACTIONS[action];
  const effects = noEffects();
  await withLockedExecution(
    m.options.pool,
    id,
    rule.allowed,
    (tx, execution) => changeAndRecord(m, tx, action, execution, effects, request),
    (found) =>
      found
        ? new ExecutionStateError(id, found.status, rule.refusal)
        : new ExecutionNotFoundError(id),
  );
  return effects;
}

/** An allowed action's change and, when it happened, its record in the same transaction. A
 * deleted execution keeps no record: the bulk operation's item says what became of it. */
async function changeAndRecord(
  m: Machine,
  tx: Queryable,
  action: BulkAction,
  execution: ExecutionRow,
  effects: Effects,
  request: ActionRequest,
): Promise<SkipReason | undefined> {
  const note: ActionNote = {};
  const skip = await ACTIONS[action].change(m, tx, execution, effects, note, request.params ?? {});
  if (!skip && action !== 'delete') {
    const { actor, reason, operationId } = request;
    const detail = operationId ? { ...note, operation_id: operationId } : note;
    await recordAction(tx, { executionId: execution.id, action, actor, reason, detail });
  }
  return skip;
}

/** What became of one item of a chunk: its outcome, not ours to record (null), or an error. */
export type ItemResult = ItemOutcome | null | { error: unknown };

/**
 * Items of a bulk operation, in one transaction: each execution is acted on when its status
 * allows, else skipped, and `record` writes the item's outcome beside the action, so the two
 * commit together or not at all. One commit for the chunk, not one per item: a commit waits
 * for the disk, which would otherwise bound a bulk action at a few hundred items a second.
 * Each item runs under a savepoint: when `record` answers false (recorded already by another
 * process, or the operation was cancelled) or the item throws, its part alone rolls back.
 * Executions are locked in id order, as every chunk does, so two chunks never deadlock.
 */
export async function actOnItems(
  m: Machine,
  action: BulkAction,
  ids: readonly string[],
  request: ActionRequest,
  record: (tx: Queryable, id: string, outcome: ItemOutcome) => Promise<boolean>,
): Promise<{ results: Map<string, ItemResult>; effects: Effects }> {
  const rule = ACTIONS[action];
  const effects = noEffects();
  const results = new Map<string, ItemResult>();
  await withTransaction(m.options.pool, async (tx) => {
    for (const id of [...ids].sort()) {
      const own = noEffects();
      await tx.query('SAVEPOINT bulk_item');
      try {
        const execution = await executions.lockExecution(tx, id);
        let skip: SkipReason | undefined = execution ? undefined : 'not_found';
        if (execution && !rule.allowed.includes(execution.status)) skip = rule.skip;
        if (execution && !skip)
          skip = await changeAndRecord(m, tx, action, execution, own, request);
        const outcome: ItemOutcome = skip
          ? { outcome: 'skipped', reason: skip }
          : { outcome: 'done' };
        const recorded = await record(tx, id, outcome);
        await tx.query(
          recorded ? 'RELEASE SAVEPOINT bulk_item' : 'ROLLBACK TO SAVEPOINT bulk_item',
        );
        results.set(id, recorded ? outcome : null);
        if (recorded) mergeEffects(effects, own);
      } catch (error) {
        await tx.query('ROLLBACK TO SAVEPOINT bulk_item');
        results.set(id, { error });
      }
    }
  });
  return { results, effects };
}
