import { WorkflowNotFoundError, WorkflowNotRunnableError } from '../errors.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import { isPgError, type Pool, SqlState, withTransaction } from '../store/db.js';
import { findScheduledWorkflows } from '../store/schedule-store.js';
import { scheduledTrace } from './attempt-tracing.js';
import { latestTick, parseSchedule } from './cron-schedule.js';
import type { EffectSink } from './state/effects.js';
import { noEffects } from './state/effects.js';
import type { StateManager } from './state/state-manager.js';

export interface CronSchedulerOptions {
  pool: Pool;
  state: StateManager;
  effects: EffectSink;
  intervalMs: number;
  logger: Log;
}

/**
 * Starts active workflows on their cron schedules. Every worker process runs it; each tick
 * starts exactly one execution because the tick is the execution's idempotency key (a unique
 * index in Postgres), whichever process gets there first. Only the latest tick is fired: ticks
 * missed while no process ran are not replayed, and a tick from before the workflow was
 * (re)activated never fires.
 */
export class CronScheduler {
  private readonly periodic: Periodic;
  /** How far back a tick may be and still fire: covers a late or slow pass. */
  private readonly lookbackMs: number;

  constructor(private readonly options: CronSchedulerOptions) {
    this.lookbackMs = Math.max(5000, options.intervalMs * 3);
    this.periodic = new Periodic(
      () => this.tickOnce(),
      options.intervalMs,
      (error) => options.logger.warn({ err: error }, 'cron pass failed; will try again'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass: fires the due tick of every scheduled workflow; returns the executions started. */
  async tickOnce(now = new Date()): Promise<string[]> {
    const started: string[] = [];
    for (const workflow of await findScheduledWorkflows(this.options.pool)) {
      const schedule = parseSchedule(workflow.schedule);
      if ('problem' in schedule) continue;
      const tick = latestTick(schedule, now);
      if (tick.getTime() < now.getTime() - this.lookbackMs || tick < workflow.updated_at) continue;
      const effects = noEffects();
      try {
        const { row, created } = await withTransaction(this.options.pool, (tx) =>
          this.options.state.start(
            tx,
            {
              workflowId: workflow.id,
              input: { scheduled_at: tick.toISOString() },
              idempotencyKey: `schedule-${tick.toISOString()}`,
              activeOnly: true,
              trigger: { type: 'schedule', tick: tick.toISOString() },
              traceContext: scheduledTrace(),
            },
            effects,
          ),
        );
        if (!created) continue;
        started.push(row.id);
        this.options.logger.info(
          { workflowId: workflow.id, executionId: row.id, tick },
          'scheduled execution started',
        );
      } catch (error) {
        // Another process fired this tick first, or the workflow was paused meanwhile.
        if (
          isPgError(error, SqlState.UNIQUE_VIOLATION) ||
          error instanceof WorkflowNotRunnableError ||
          error instanceof WorkflowNotFoundError
        ) {
          continue;
        }
        throw error;
      }
      await this.options.effects.apply(effects);
    }
    return started;
  }
}
