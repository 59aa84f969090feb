import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type LabelValues,
  Registry,
} from 'prom-client';
import type { QueueDepth } from '../core/stats-manager.js';
import type { SweepReport } from '../engine/recovery-sweep.js';
import type { ExecutionEvent } from './execution-events.js';
import { type ProbeSources, probeGauges } from './probe-metrics.js';

export interface ServiceMetricsOptions {
  /** Reads the queues' depth; called on scrape. Null when this process has no queue. */
  queueDepth: (() => Promise<QueueDepth[]>) | null;
  /** Readiness and external tasks, read on scrape (src/monitoring/probe-metrics.ts). */
  probes?: ProbeSources;
  /** Added to every metric, e.g. the process role. */
  defaultLabels?: Record<string, string>;
}

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'paused'] as const;
// A scrape must answer even with Redis away: the queue gauges give up after this long.
const QUEUE_PROBE_TIMEOUT_MS = 1500;

/** Seconds between two ISO timestamps, or null when either is missing or out of order. */
function secondsBetween(from: string | null, to: string | null): number | null {
  if (!from || !to) return null;
  const seconds = (Date.parse(to) - Date.parse(from)) / 1000;
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

type Registers = Registry[];

/** One counter per execution outcome, keyed by the status that ends in it. */
function executionCounters(registers: Registers): Record<string, Counter<'workflow_type'>> {
  const executionCounter = (outcome: string, help: string) =>
    new Counter({
      name: `workflow_executions_${outcome}_total`,
      help,
      labelNames: ['workflow_type'],
      registers,
    });
  return {
    started: executionCounter('started', 'Executions started, by workflow type'),
    completed: executionCounter('completed', 'Executions that completed, by workflow type'),
    failed: executionCounter('failed', 'Executions that failed, by workflow type'),
    cancelled: executionCounter('cancelled', 'Executions cancelled, by workflow type'),
    timed_out: executionCounter('timed_out', 'Executions that timed out, by workflow type'),
  };
}

function stepMetrics(registers: Registers) {
  return {
    stepDuration: new Histogram({
      name: 'workflow_step_duration_seconds',
      help: 'Duration of finished step runs (first start to end, retries included), by step type and outcome',
      labelNames: ['step_type', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
      registers,
    }),
    stepAttempts: new Counter({
      name: 'workflow_step_attempts_total',
      help: 'Step attempts started by a worker, by step type',
      labelNames: ['step_type'],
      registers,
    }),
    stepRetries: new Counter({
      name: 'workflow_step_retries_total',
      help: 'Failed step attempts scheduled for a retry, by step type',
      labelNames: ['step_type'],
      registers,
    }),
    stepTransitions: new Counter({
      name: 'workflow_step_transitions_total',
      help: 'Step run status changes, by step type and new status',
      labelNames: ['step_type', 'status'],
      registers,
    }),
  };
}

function sweepMetrics(registers: Registers) {
  return {
    sweeps: new Counter({
      name: 'workflow_recovery_sweeps_total',
      help: 'Recovery sweep passes run by this process; leader="false" when another process held the sweep lock',
      labelNames: ['leader'],
      registers,
    }),
    sweepActions: new Counter({
      name: 'workflow_recovery_sweep_actions_total',
      help: 'What recovery sweeps did: timed_out_executions, expired_attempts, requeued, advanced',
      labelNames: ['action'],
      registers,
    }),
  };
}

function relayMetrics(registers: Registers) {
  return {
    eventsRelayed: new Counter({
      name: 'workflow_execution_events_relayed_total',
      help: 'Execution changes this process relayed from the Postgres outbox to Redis',
      registers,
    }),
    streamClients: new Gauge({
      name: 'workflow_execution_stream_clients',
      help: 'Clients connected to GET /executions/{id}/stream on this process',
      registers,
    }),
  };
}

/** The queue gauges, read on scrape. */
function queueGauges(queueDepth: () => Promise<QueueDepth[]>, registers: Registers): void {
  let probe: { at: number; result: Promise<QueueDepth[]> } | undefined;
  // Both queue gauges are collected on each scrape; one Redis round trip serves both.
  const read = (): Promise<QueueDepth[]> => {
    if (!probe || Date.now() - probe.at > 1000) {
      const timeout = new Promise<QueueDepth[]>((resolve) =>
        setTimeout(() => resolve([]), QUEUE_PROBE_TIMEOUT_MS).unref(),
      );
      probe = {
        at: Date.now(),
        result: Promise.race([queueDepth().catch(() => []), timeout]),
      };
    }
    return probe.result;
  };
  new Gauge({
    name: 'workflow_queue_jobs',
    help: 'Jobs in each BullMQ queue by state, read on scrape',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      this.reset();
      for (const queue of await read()) {
        for (const state of QUEUE_STATES) {
          this.set({ queue: queue.name, state }, queue.counts[state] ?? 0);
        }
      }
    },
  });
  new Gauge({
    name: 'workflow_workers_online',
    help: 'Workers connected to each BullMQ queue (all processes), read on scrape',
    labelNames: ['queue'],
    registers,
    async collect() {
      this.reset();
      for (const queue of await read()) {
        if (queue.workers !== null) this.set({ queue: queue.name }, queue.workers);
      }
    },
  });
}

/**
 * The Prometheus metrics of one service instance, in a registry of its own (never the global
 * default), so several apps in one process do not collide.
 *
 * Engine counters are fed by the execution event relay: exactly one process at a time relays
 * the outbox of committed changes, so across processes each change is counted once; each
 * process exposes what it relayed, and Prometheus sums over instances.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly executionCounters: Record<string, Counter<'workflow_type'>>;
  private readonly stepDuration: Histogram<'step_type' | 'status'>;
  private readonly stepAttempts: Counter<'step_type'>;
  private readonly stepRetries: Counter<'step_type'>;
  private readonly stepTransitions: Counter<'step_type' | 'status'>;
  private readonly sweeps: Counter<'leader'>;
  private readonly sweepActions: Counter<'action'>;
  private readonly eventsRelayed: Counter;
  readonly streamClients: Gauge;

  constructor(options: ServiceMetricsOptions) {
    const registers = [this.registry];
    if (options.defaultLabels) this.registry.setDefaultLabels(options.defaultLabels);
    collectDefaultMetrics({ register: this.registry });

    // Created in this order so the exposition lists the families as it always has.
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.executionCounters = executionCounters(registers);
    ({
      stepDuration: this.stepDuration,
      stepAttempts: this.stepAttempts,
      stepRetries: this.stepRetries,
      stepTransitions: this.stepTransitions,
    } = stepMetrics(registers));
    ({ sweeps: this.sweeps, sweepActions: this.sweepActions } = sweepMetrics(registers));
    ({ eventsRelayed: this.eventsRelayed, streamClients: this.streamClients } =
      relayMetrics(registers));
    if (options.queueDepth) queueGauges(options.queueDepth, registers);
    if (options.probes) probeGauges(options.probes, registers);
  }

  /** Records one HTTP request; `route` is the route pattern, never the raw URL. */
  observeRequest(labels: LabelValues<'method' | 'route' | 'status_code'>, seconds: number): void {
    this.httpDuration.observe(labels, seconds);
  }

  /** Counts relayed execution changes (each committed change is relayed once). */
  observeEvents(events: readonly ExecutionEvent[]): void {
    this.eventsRelayed.inc(events.length);
    for (const event of events) {
      if (event.kind === 'execution') {
        const workflowType = event.workflow_type ?? 'unknown';
        if (event.previous_status === null) {
          this.executionCounters.started?.inc({ workflow_type: workflowType });
        } else {
          this.executionCounters[event.status]?.inc({ workflow_type: workflowType });
        }
        continue;
      }
      const stepType = event.step_type ?? 'unknown';
      this.stepTransitions.inc({ step_type: stepType, status: event.status });
      if (event.type === 'step.retrying') this.stepRetries.inc({ step_type: stepType });
      // A new attempt starts from the queue, or straight from pending when a worker runs a
      // quick step that its own commit made ready.
      if (
        event.status === 'running' &&
        (event.previous_status === 'queued' || event.previous_status === 'pending')
      ) {
        this.stepAttempts.inc({ step_type: stepType });
      }
      if (event.status === 'completed' || event.status === 'failed') {
        const seconds = secondsBetween(event.started_at, event.completed_at);
        if (seconds !== null) {
          this.stepDuration.observe({ step_type: stepType, status: event.status }, seconds);
        }
      }
    }
  }

  /** Counts what one recovery sweep pass did. */
  observeSweep(report: SweepReport): void {
    this.sweeps.inc({ leader: String(report.leader) });
    if (!report.leader) return;
    this.sweepActions.inc({ action: 'timed_out_executions' }, report.timedOutExecutions);
    this.sweepActions.inc({ action: 'expired_attempts' }, report.expiredAttempts);
    this.sweepActions.inc({ action: 'requeued' }, report.requeued);
    this.sweepActions.inc({ action: 'advanced' }, report.advanced);
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
