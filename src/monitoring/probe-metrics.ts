import { Gauge, type Registry } from 'prom-client';

/**
 * Gauges read on scrape from shared state (Postgres, Redis), so every process reports the same
 * figures and an alert can take max() over instances: readiness, and external tasks next to
 * their pollers. The alerts that read them are in deploy/prometheus/alerts.yaml (README
 * "Monitoring kit").
 */

export interface ExternalTaskState {
  waiting: Array<{ step_type: string; waiting: number }>;
  lastPolls: Array<{ step_type: string; last_poll_at: Date }>;
}

export interface ProbeSources {
  readiness: () => Promise<boolean>;
  externalTasks: () => Promise<ExternalTaskState>;
}

// A scrape must answer even with a dependency away (as the queue gauges do).
const PROBE_TIMEOUT_MS = 1500;

/** The probe's answer, or `fallback` once it fails or takes longer than PROBE_TIMEOUT_MS. */
function bounded<T>(probe: () => Promise<T>, fallback: T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback), PROBE_TIMEOUT_MS);
    timer.unref();
    probe()
      .then(
        (value) => resolve(value),
        () => resolve(fallback),
      )
      .finally(() => clearTimeout(timer));
  });
}

export function probeGauges(sources: ProbeSources, registers: Registry[]): void {
  new Gauge({
    name: 'workflow_ready',
    help: '1 when this process is ready (GET /health/ready would answer 200), else 0; read on scrape',
    registers,
    async collect() {
      this.set((await bounded(sources.readiness, false)) ? 1 : 0);
    },
  });
  let tasks: Promise<ExternalTaskState> | undefined;
  // Both task gauges are collected on each scrape; one read serves both.
  const readTasks = (): Promise<ExternalTaskState> => {
    tasks ??= bounded(sources.externalTasks, { waiting: [], lastPolls: [] }).finally(() =>
      setTimeout(() => {
        tasks = undefined;
      }, 1000).unref(),
    );
    return tasks;
  };
  new Gauge({
    name: 'workflow_external_tasks_waiting',
    help: 'External tasks waiting for a worker to claim them, by step type (all processes); read on scrape',
    labelNames: ['step_type'],
    registers,
    async collect() {
      this.reset();
      for (const row of (await readTasks()).waiting) {
        this.set({ step_type: row.step_type }, row.waiting);
      }
    },
  });
  new Gauge({
    name: 'workflow_task_last_poll_timestamp_seconds',
    help: 'When a worker last polled for each step type ("*": every type), Unix seconds; read on scrape',
    labelNames: ['step_type'],
    registers,
    async collect() {
      this.reset();
      for (const row of (await readTasks()).lastPolls) {
        this.set({ step_type: row.step_type }, row.last_poll_at.getTime() / 1000);
      }
    },
  });
}
