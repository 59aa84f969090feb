import {
  EXECUTION_STATUSES,
  type ExecutionStatus,
  UNFINISHED_EXECUTION_STATUSES,
  WORKFLOW_STATUSES,
} from '../domain/statuses.js';
import { WORKFLOW_TYPES, type WorkflowDefinition } from '../domain/workflow-definition.js';
import { WorkflowNotFoundError } from '../errors.js';
import type {
  QueueStatsView,
  RetentionStatsView,
  StepStatsView,
  SystemStatsView,
  WorkflowStatsView,
} from '../schemas/stats.js';
import type { Pool } from '../store/db.js';
import { lastMaintenanceRun, RETENTION_PASS } from '../store/maintenance-runs.js';
import type { StatsCache } from '../store/stats-cache.js';
import * as store from '../store/stats-store.js';

export type {
  QueueStatsView,
  StepStatsView,
  SystemStatsView,
  WorkflowStatsView,
} from '../schemas/stats.js';

/** Depth of one queue and the workers attached to it. */
export interface QueueDepth {
  name: string;
  counts: Record<string, number>;
  /** Null when Redis could not tell (e.g. CLIENT LIST refused by a managed Redis). */
  workers: number | null;
}

export interface StatsManagerOptions {
  pool: Pool;
  cache: StatsCache;
  /** Reads the step queue's depth and workers (BullMQ); may reject when Redis is away. */
  queueDepth: () => Promise<QueueDepth[]>;
  /** Recent executions the duration percentiles and per-step statistics look back over. */
  window: number;
  /** The definition of a workflow version (cached): its steps, in order. */
  definitionOf(workflowId: string, version: number): Promise<WorkflowDefinition>;
  /** RETENTION_DAYS and RETENTION_INTERVAL_SECONDS, as GET /stats shows them. */
  retention: { days: number; intervalSeconds: number };
}

const QUEUE_TIMEOUT_MS = 1500;

const round = (value: number | null, digits = 3): number | null =>
  value === null || !Number.isFinite(value) ? null : Number(value.toFixed(digits));

function zeroed<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** Statistics of one workflow and of the whole service (GET /workflows/{id}/stats, /stats). */
export class StatsManager {
  constructor(private readonly options: StatsManagerOptions) {}

  /** Execution and step statistics of one workflow, computed from Postgres. */
  async workflowStats(workflowId: string): Promise<WorkflowStatsView> {
    const { pool } = this.options;
    const head = await store.findWorkflowHead(pool, workflowId);
    if (!head) throw new WorkflowNotFoundError(workflowId);
    const [aggregate, windowed, definition] = await Promise.all([
      store.workflowExecutionAggregate(pool, workflowId),
      this.windowOf(workflowId),
      this.options.definitionOf(workflowId, head.version),
    ]);
    const { steps: stepAggregate } = windowed;
    const definitions = definition.steps;
    const byStatus = { ...zeroed(EXECUTION_STATUSES) };
    for (const [status, count] of Object.entries(aggregate.counts)) {
      if (status in byStatus) byStatus[status as ExecutionStatus] = count;
    }
    const count = (statuses: readonly ExecutionStatus[]) =>
      statuses.reduce((sum, status) => sum + byStatus[status], 0);
    const finished = count(['completed', 'failed', 'cancelled', 'timed_out']);

    const aggregates = new Map(stepAggregate.map((step) => [step.step_id, step]));
    const steps: StepStatsView[] = definitions.map((definition) =>
      stepView(definition.id, definition.name, definition.step_type, aggregates.get(definition.id)),
    );
    // Steps that only older versions of the workflow had.
    for (const step of stepAggregate) {
      if (!definitions.some((definition) => definition.id === step.step_id)) {
        steps.push(stepView(step.step_id, step.step_id, null, step));
      }
    }

    return {
      workflow_id: head.id,
      name: head.name,
      workflow_type: head.workflow_type,
      status: head.status,
      execution_count: count(EXECUTION_STATUSES),
      finished_count: finished,
      success_count: byStatus.completed,
      failure_count: byStatus.failed + byStatus.timed_out,
      cancelled_count: byStatus.cancelled,
      timed_out_count: byStatus.timed_out,
      running_count: count(UNFINISHED_EXECUTION_STATUSES),
      executions_by_status: byStatus,
      success_rate: finished === 0 ? null : round(byStatus.completed / finished, 4),
      average_duration_seconds: round(aggregate.average_duration_seconds),
      p50_duration_seconds: round(windowed.p50),
      p95_duration_seconds: round(windowed.p95),
      last_execution_at: aggregate.last_execution_at?.toISOString() ?? null,
      window_executions: windowed.executions,
      window_generated_at: windowed.generated_at,
      steps,
      generated_at: new Date().toISOString(),
    };
  }

  /**
   * What the workflow's most recent executions say, cached for STATS_CACHE_SECONDS: it moves
   * with every step, and reading the window costs far more than the counts beside it, which
   * are read live. Computing it reads the window only, however long the history.
   */
  private async windowOf(
    workflowId: string,
  ): Promise<store.WindowAggregate & { generated_at: string }> {
    const { cache, pool, window } = this.options;
    const key = `workflow-window:${workflowId}`;
    const cached = await cache.get<store.WindowAggregate & { generated_at: string }>(key);
    if (cached) return cached;
    const fresh = {
      ...(await store.workflowWindowAggregate(pool, workflowId, window)),
      generated_at: new Date().toISOString(),
    };
    await cache.set(key, fresh);
    return fresh;
  }

  /** Service-wide statistics, cached in Redis for a few seconds (a Redis failure only skips the cache). */
  async systemStats(): Promise<SystemStatsView> {
    const cached = await this.options.cache.get<SystemStatsView>('system');
    if (cached) return cached;
    const [aggregate, queues, retention] = await Promise.all([
      store.systemAggregate(this.options.pool),
      this.readQueues(),
      this.retentionView(),
    ]);
    const workflowsByStatus: Record<string, number> = zeroed(WORKFLOW_STATUSES);
    const workflowsByType: Record<string, number> = zeroed(WORKFLOW_TYPES);
    let workflowTotal = 0;
    for (const row of aggregate.workflows) {
      workflowsByStatus[row.status] = (workflowsByStatus[row.status] ?? 0) + row.count;
      workflowsByType[row.workflow_type] = (workflowsByType[row.workflow_type] ?? 0) + row.count;
      workflowTotal += row.count;
    }
    const executionsByStatus = zeroed(EXECUTION_STATUSES);
    let executionTotal = 0;
    for (const row of aggregate.executions) {
      if (row.status in executionsByStatus) {
        executionsByStatus[row.status as ExecutionStatus] += row.count;
      }
      executionTotal += row.count;
    }
    const { window } = aggregate;
    const view: SystemStatsView = {
      generated_at: new Date().toISOString(),
      workflows: { total: workflowTotal, by_status: workflowsByStatus, by_type: workflowsByType },
      executions: {
        total: executionTotal,
        by_status: executionsByStatus,
        running: UNFINISHED_EXECUTION_STATUSES.reduce(
          (sum, status) => sum + executionsByStatus[status],
          0,
        ),
        started_last_hour: window.started_last_hour,
        started_last_day: window.started_last_day,
        finished_last_hour: window.finished_last_hour,
        finished_last_day: window.finished_last_day,
      },
      throughput: {
        started_per_minute_last_hour: round(window.started_last_hour / 60, 2) ?? 0,
        finished_per_minute_last_5_minutes: round(window.finished_last_5_minutes / 5, 2) ?? 0,
        finished_per_minute_last_hour: round(window.finished_last_hour / 60, 2) ?? 0,
      },
      steps: {
        finished_last_hour: aggregate.steps.finished_last_hour,
        average_queue_latency_seconds: round(aggregate.steps.average_queue_seconds),
        average_duration_seconds: round(aggregate.steps.average_duration_seconds),
      },
      queues: queues?.map(queueView) ?? null,
      workers_online: queues ? sumWorkers(queues) : null,
      retention,
    };
    await this.options.cache.set('system', view);
    return view;
  }

  /** The settings of this process and the last purge of any (one row of maintenance_runs). */
  private async retentionView(): Promise<RetentionStatsView> {
    const last = await lastMaintenanceRun(this.options.pool, RETENTION_PASS);
    return {
      days: this.options.retention.days,
      interval_seconds: this.options.retention.intervalSeconds,
      last_purge: last && {
        started_at: last.started_at.toISOString(),
        ended_at: last.ended_at?.toISOString() ?? null,
        executions: last.executions,
        step_runs: last.step_runs,
        events: last.events,
      },
    };
  }

  private async readQueues(): Promise<QueueDepth[] | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), QUEUE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.options.queueDepth().catch(() => null), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function stepView(
  stepId: string,
  name: string,
  stepType: string | null,
  aggregate: store.StepAggregateRow | undefined,
): StepStatsView {
  return {
    step_id: stepId,
    name,
    step_type: stepType,
    runs: aggregate?.runs ?? 0,
    completed: aggregate?.completed ?? 0,
    failures: aggregate?.failures ?? 0,
    skipped: aggregate?.skipped ?? 0,
    cancelled: aggregate?.cancelled ?? 0,
    attempts: aggregate?.attempts ?? 0,
    retries: aggregate?.retries ?? 0,
    average_duration_seconds: round(aggregate?.average_duration_seconds ?? null),
  };
}

function queueView(queue: QueueDepth): QueueStatsView {
  const get = (state: string) => queue.counts[state] ?? 0;
  return {
    name: queue.name,
    waiting: get('waiting'),
    active: get('active'),
    delayed: get('delayed'),
    failed: get('failed'),
    prioritized: get('prioritized'),
    paused: get('paused'),
  };
}

function sumWorkers(queues: readonly QueueDepth[]): number | null {
  if (queues.some((queue) => queue.workers === null)) return null;
  return queues.reduce((sum, queue) => sum + (queue.workers ?? 0), 0);
}
