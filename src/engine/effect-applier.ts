import type { Redis } from 'ioredis';
import type { Log } from '../logger.js';
import { executionIdsOf } from '../monitoring/log-context.js';
import { tracingOn } from '../monitoring/tracing.js';
import type { Pool } from '../store/db.js';
import { sendExecutionSpan } from './attempt-tracing.js';
import type { CancellationBus } from './cancellation-bus.js';
import type { EffectSink, Effects, ExecutionLinks } from './state/effects.js';
import type { StepQueue } from './step-queue.js';

export interface EffectApplierOptions {
  queue: StepQueue;
  bus: CancellationBus;
  publisher: Redis;
  invalidateWorkflow(workflowId: string): Promise<void>;
  logger: Log;
  /** Fault injection: behave as if the process died right after the commit. */
  dropJobs: boolean;
  links: ExecutionLinks;
  /** For the execution spans of ended executions (README "Tracing"). */
  pool: Pool;
}

/** Parent/child follow-ups can cascade (a child's end ends its parent, which has a parent...);
 * past this depth the recovery sweep finishes the chain. */
const MAX_LINK_DEPTH = 20;

/**
 * Applies committed effects. Nothing here may lose work: a failed enqueue leaves the run
 * queued in Postgres, and the recovery sweep enqueues it again.
 */
export class EffectApplier implements EffectSink {
  constructor(private readonly options: EffectApplierOptions) {}

  async apply(effects: Effects, depth = 0): Promise<void> {
    const { queue, bus, publisher, logger, links } = this.options;
    const advances = effects.advanceExecutions.length + effects.timedAdvances.length;
    if (effects.jobs.length + advances > 0 && !this.options.dropJobs) {
      try {
        await queue.enqueue(effects.jobs);
        await queue.enqueueAdvances(effects.advanceExecutions, effects.timedAdvances);
      } catch (error) {
        logger.warn(
          { err: error, jobs: effects.jobs.length, executionIds: executionIdsOf(effects.jobs) },
          'enqueue failed; the recovery sweep will retry it',
        );
      }
    }
    if (effects.abortExecutions.length > 0) {
      for (const id of effects.abortExecutions) bus.abort(id);
      await bus.publish(publisher, effects.abortExecutions).catch((error: unknown) => {
        logger.warn(
          { err: error, executionIds: effects.abortExecutions },
          'abort broadcast failed; stale results are fenced in Postgres',
        );
      });
    }
    // Whichever process ended it (a worker's record, a cancel, the sweep, a child's end).
    if (effects.endedExecutions.length > 0 && tracingOn())
      await this.sendExecutionSpans(effects.endedExecutions);
    for (const workflowId of new Set(effects.changedWorkflows)) {
      await this.options.invalidateWorkflow(workflowId).catch((error: unknown) => {
        logger.warn({ err: error, workflowId }, 'workflow cache invalidation failed');
      });
    }
    if (depth >= MAX_LINK_DEPTH) return;
    const followUps = [
      ...effects.endedChildren.map((id) => () => links.childEnded(id)),
      ...effects.stoppedParents.map((id) => () => links.cancelChildren(id)),
    ];
    for (const followUp of followUps) {
      try {
        await this.apply(await followUp(), depth + 1);
      } catch (error) {
        logger.warn(
          { err: error },
          'sub-workflow follow-up failed; the recovery sweep will redo it',
        );
      }
    }
  }

  private async sendExecutionSpans(executionIds: readonly string[]): Promise<void> {
    for (const id of executionIds) {
      await sendExecutionSpan(this.options.pool, id).catch((error: unknown) => {
        this.options.logger.warn({ err: error, executionId: id }, 'execution span not sent');
      });
    }
  }
}
