import { UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import { type Pool, withTransaction } from '../store/db.js';
import * as executions from '../store/executions.js';
import * as sweep from '../store/sweep-queries.js';
import { type Effects, type ExecutionLinks, noEffects } from './state/effects.js';
import type { StateManager } from './state/state-manager.js';

/**
 * Parent and child executions (subworkflow steps). The child's end resumes the parent's
 * waiting run; a parent that ends without completing cancels its unfinished children. Both run
 * after the commit that caused them, each in its own transaction; the recovery sweep repeats
 * them for anything a crash cut short.
 */
export class SubworkflowLinks implements ExecutionLinks {
  constructor(
    private readonly pool: Pool,
    private readonly state: StateManager,
  ) {}

  async childEnded(childExecutionId: string): Promise<Effects> {
    return withTransaction(this.pool, async (tx) => {
      const child = await executions.getExecution(tx, childExecutionId);
      if (!child?.parent_execution_id || child.parent_run_id === null) return noEffects();
      if (UNFINISHED_EXECUTION_STATUSES.includes(child.status)) return noEffects();
      const parent = await executions.lockExecution(tx, child.parent_execution_id);
      const run = parent ? await sweep.lockChildWait(tx, child.parent_run_id, child.id) : null;
      if (!parent || !run || !UNFINISHED_EXECUTION_STATUSES.includes(parent.status)) {
        return noEffects();
      }
      return this.state.resolveWait(
        tx,
        parent,
        run,
        child.status === 'completed'
          ? { kind: 'completed', output: child.output_data ?? null }
          : {
              kind: 'failed',
              error: {
                message: `sub-workflow execution ${child.id} ${child.status}${child.error ? `: ${child.error}` : ''}`,
                type: 'subworkflow_failed',
                // A new attempt starts a new child: the step's retry policy decides.
                retryable: true,
                attempt: run.attempt,
                details: { execution_id: child.id, status: child.status },
              },
            },
      );
    });
  }

  async cancelChildren(parentExecutionId: string): Promise<Effects> {
    const effects = noEffects();
    for (const childId of await executions.listUnfinishedChildren(this.pool, parentExecutionId)) {
      await withTransaction(this.pool, async (tx) => {
        const child = await executions.lockExecution(tx, childId);
        if (!child || !UNFINISHED_EXECUTION_STATUSES.includes(child.status)) return;
        await this.state.finish(
          tx,
          child,
          { status: 'cancelled', error: 'Parent execution ended' },
          effects,
        );
      });
    }
    return effects;
  }
}
