import { z } from 'zod';
import { EXECUTION_STATUSES } from '../domain/statuses.js';
import { timestamp } from './common.js';

/** Statistics of one workflow and of the whole service, as the API shows them. */

const seconds = z.number().nullable();
const byExecutionStatus = z.object(
  Object.fromEntries(EXECUTION_STATUSES.map((status) => [status, z.number().int()])) as Record<
    (typeof EXECUTION_STATUSES)[number],
    z.ZodNumber
  >,
);

export const stepStatsSchema = z.object({
  step_id: z.string(),
  name: z.string(),
  step_type: z.string().nullable().describe('Null for a step that only older versions had'),
  runs: z.number().int().describe('Runs that started (a for_each step counts once)'),
  completed: z.number().int(),
  failures: z.number().int(),
  skipped: z.number().int(),
  cancelled: z.number().int(),
  attempts: z.number().int().describe('Attempts made, for_each items included'),
  retries: z.number().int().describe('Attempts beyond the first of each run'),
  average_duration_seconds: seconds.describe('Of completed runs'),
});
export type StepStatsView = z.infer<typeof stepStatsSchema>;

export const workflowStatsSchema = z
  .object({
    workflow_id: z.string(),
    name: z.string(),
    workflow_type: z.string(),
    status: z.string(),
    execution_count: z.number().int().describe('Every execution, ended or not'),
    finished_count: z
      .number()
      .int()
      .describe("Executions that ended: what the workflow's own execution_count counts"),
    success_count: z.number().int(),
    failure_count: z.number().int().describe('Failed and timed-out executions'),
    cancelled_count: z.number().int(),
    timed_out_count: z.number().int(),
    running_count: z
      .number()
      .int()
      .describe('Not ended yet: pending, queued, running, waiting, paused'),
    executions_by_status: byExecutionStatus,
    success_rate: z
      .number()
      .nullable()
      .describe('success_count / finished_count, 0..1; null before any execution ended'),
    average_duration_seconds: seconds.describe('Of every ended execution'),
    p50_duration_seconds: seconds.describe('Of the ended ones among the window_executions newest'),
    p95_duration_seconds: seconds.describe('Of the ended ones among the window_executions newest'),
    last_execution_at: timestamp.nullable().describe('When the newest execution was created'),
    window_executions: z
      .number()
      .int()
      .describe(
        'How many of the most recent executions the percentiles and per-step figures cover (STATS_WINDOW)',
      ),
    window_generated_at: timestamp.describe(
      'When the percentiles and per-step figures were computed: they are cached for STATS_CACHE_SECONDS, while every count is live',
    ),
    steps: z.array(stepStatsSchema).describe('In definition order, over window_executions'),
    generated_at: timestamp,
  })
  .meta({
    example: {
      workflow_id: 'wf_3f6d0c9e8b7a4f1e9c2d5b8a7e6f4c3d',
      name: 'Data Processing Workflow',
      workflow_type: 'sequential',
      status: 'active',
      execution_count: 12,
      finished_count: 11,
      success_count: 9,
      failure_count: 1,
      cancelled_count: 1,
      timed_out_count: 0,
      running_count: 1,
      executions_by_status: {
        pending: 0,
        queued: 0,
        running: 1,
        waiting: 0,
        paused: 0,
        completed: 9,
        failed: 1,
        cancelled: 1,
        timed_out: 0,
      },
      success_rate: 0.8182,
      average_duration_seconds: 1.42,
      p50_duration_seconds: 1.2,
      p95_duration_seconds: 3.1,
      last_execution_at: '2025-11-25T18:00:00.000Z',
      window_executions: 12,
      window_generated_at: '2025-11-25T18:00:00.500Z',
      steps: [
        {
          step_id: 'data_validation',
          name: 'Data Validation',
          step_type: 'validate',
          runs: 12,
          completed: 11,
          failures: 1,
          skipped: 0,
          cancelled: 0,
          attempts: 12,
          retries: 0,
          average_duration_seconds: 0.012,
        },
      ],
      generated_at: '2025-11-25T18:00:01.000Z',
    },
  });
export type WorkflowStatsView = z.infer<typeof workflowStatsSchema>;

export const queueStatsSchema = z.object({
  name: z.string(),
  waiting: z.number().int(),
  active: z.number().int(),
  delayed: z.number().int(),
  failed: z.number().int(),
  prioritized: z.number().int(),
  paused: z.number().int(),
});
export type QueueStatsView = z.infer<typeof queueStatsSchema>;

export const retentionStatsSchema = z
  .object({
    days: z
      .number()
      .int()
      .describe(
        "RETENTION_DAYS: finished executions and events older than this are purged; 0 keeps everything (a workflow's config.retention_days overrides it)",
      ),
    interval_seconds: z.number().int().describe('RETENTION_INTERVAL_SECONDS: time between passes'),
    last_purge: z
      .object({
        started_at: timestamp,
        ended_at: timestamp
          .nullable()
          .describe('Null while the pass runs, or when it was cut short (its counts stay exact)'),
        executions: z.number().int().describe('Executions deleted, sub-workflows included'),
        step_runs: z.number().int().describe('Their step runs deleted'),
        events: z.number().int().describe('Received events deleted'),
      })
      .nullable()
      .describe('The most recent purge, whichever process ran it; null before the first'),
  })
  .describe('Retention of finished executions and events (README "Operations")');
export type RetentionStatsView = z.infer<typeof retentionStatsSchema>;

export const systemStatsSchema = z.object({
  generated_at: timestamp.describe('When these figures were computed (cached a few seconds)'),
  workflows: z.object({
    total: z.number().int(),
    by_status: z.record(z.string(), z.number().int()),
    by_type: z.record(z.string(), z.number().int()),
  }),
  executions: z.object({
    total: z.number().int(),
    by_status: byExecutionStatus,
    running: z.number().int().describe('Not ended yet: pending, queued, running, waiting, paused'),
    started_last_hour: z.number().int(),
    started_last_day: z.number().int(),
    finished_last_hour: z.number().int(),
    finished_last_day: z.number().int(),
  }),
  throughput: z.object({
    started_per_minute_last_hour: z.number(),
    finished_per_minute_last_5_minutes: z.number(),
    finished_per_minute_last_hour: z.number(),
  }),
  steps: z.object({
    finished_last_hour: z.number().int().describe('Step runs that ended in the last hour'),
    average_queue_latency_seconds: seconds.describe(
      'From queued to started, first attempts of runs that ended in the last hour',
    ),
    average_duration_seconds: seconds.describe('Of runs completed in the last hour'),
  }),
  queues: z
    .array(queueStatsSchema)
    .nullable()
    .describe('BullMQ job counts per queue; null when Redis could not be asked'),
  workers_online: z
    .number()
    .int()
    .nullable()
    .describe('Workers connected to the step queue, all processes; null when unknown'),
  retention: retentionStatsSchema,
});
export type SystemStatsView = z.infer<typeof systemStatsSchema>;
