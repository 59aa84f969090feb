import { UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { Pool } from '../store/db.js';
import * as executions from '../store/executions.js';
import { type Effects, type ExecutionLinks, noEffects } from './state/effects.js';
import { withLockedExecution } from './state/lock.js';
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

  childEnded(childExecutionId: string): Promise<Effects> {
    return this.state.childEnded(childExecutionId);
  }

  async cancelChildren(parentExecutionId: string): Promise<Effects> {
    const effects = noEffects();
    for (const childId of await executions.listUnfinishedChildren(this.pool, parentExecutionId)) {
      await withLockedExecution(this.pool, childId, UNFINISHED_EXECUTION_STATUSES, (tx, child) =>
        this.state.finish(
          tx,
          child,
          { status: 'cancelled', error: 'Parent execution ended' },
          effects,
        ),
      );
    }
    return effects;
  }
}
