import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type Exposition, parsePrometheus } from '../helpers/monitoring.js';
import { parsePromql } from '../helpers/promql.js';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  NUMBER_CHECK_STEP,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * The monitoring kit under deploy/ (README "Monitoring kit") reads only what the service
 * exposes: every expression of the dashboard and the alert rules parses as PromQL, and every
 * metric it names is in a real scrape of a service that ran executions and external tasks.
 */

const ctx = useTestApp({ SWEEP_INTERVAL_MS: '200' });

interface Dashboard {
  panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}

function kitExpressions(): Array<{ where: string; expr: string }> {
  const dashboard = JSON.parse(
    readFileSync('deploy/grafana/workflow-service.json', 'utf8'),
  ) as Dashboard;
  const rules = parseYaml(readFileSync('deploy/prometheus/alerts.yaml', 'utf8')) as RuleFile;
  return [
    ...dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        where: `panel "${panel.title}"`,
        expr: target.expr,
      })),
    ),
    ...rules.groups.flatMap((group) =>
      group.rules.map((rule) => ({ where: `rule ${rule.alert ?? rule.record}`, expr: rule.expr })),
    ),
  ];
}

const HISTOGRAM_SERIES = /_(bucket|sum|count)$/;

/** A metric name the scrape declares: a family, or a histogram's _bucket/_sum/_count series. */
function declared(metrics: Exposition, name: string): boolean {
  if (metrics.types.has(name)) return true;
  return metrics.types.get(name.replace(HISTOGRAM_SERIES, '')) === 'histogram';
}

async function scrape(): Promise<Exposition> {
  const response = await ctx.app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode, response.body).toBe(200);
  return parsePrometheus(response.body);
}

function sampled(metrics: Exposition, name: string): boolean {
  return metrics.samples.some((sample) => sample.name === name);
}

/** Runs a completed, a failed and an external-task execution; one more task is left waiting. */
async function runExecutions(): Promise<void> {
  const checkId = await createWorkflow(ctx.app, {
    name: 'kit check',
    workflow_type: 'sequential',
    steps: [NUMBER_CHECK_STEP],
  });
  const good = await startExecution(ctx.app, checkId, { n: 1 });
  const bad = await startExecution(ctx.app, checkId, { n: 'x' });
  expect((await waitForExecution(ctx.app, good)).status).toBe('completed');
  expect((await waitForExecution(ctx.app, bad)).status).toBe('failed');

  const taskId = await createWorkflow(ctx.app, {
    name: 'kit task',
    workflow_type: 'sequential',
    steps: [{ id: 'sign', name: 'sign', step_type: 'kit_sign', config: {} }],
  });
  const signed = await startExecution(ctx.app, taskId);
  const poll = await ctx.app.inject({
    method: 'POST',
    url: '/tasks/poll',
    payload: { step_types: ['kit_sign'], worker_id: 'kit-worker', wait_seconds: 10 },
  });
  expect(poll.statusCode, poll.body).toBe(200);
  const [task] = poll.json().tasks as Array<{ task_token: string }>;
  const done = await ctx.app.inject({
    method: 'POST',
    url: `/tasks/${task?.task_token}/complete`,
    payload: { output: { signed: true } },
  });
  expect(done.statusCode, done.body).toBe(200);
  expect((await waitForExecution(ctx.app, signed)).status).toBe('completed');
  await startExecution(ctx.app, taskId);
}

describe('monitoring kit', () => {
  it('every dashboard and alert expression parses as PromQL and names a metric', () => {
    const expressions = kitExpressions();
    expect(expressions.length).toBeGreaterThan(15);
    for (const { where, expr } of expressions) {
      const parsed = parsePromql(expr);
      expect(parsed.errors, `${where}: ${expr}`).toEqual([]);
      expect(parsed.unnamedSelectors, where).toBe(0);
      expect(parsed.metricNames.length, where).toBeGreaterThan(0);
    }
  });

  it('the parser rejects broken PromQL, so the check above means something', () => {
    expect(parsePromql('sum(rate(workflow_step_attempts_total[5m])').errors).not.toEqual([]);
    expect(parsePromql('rate(a[5m]) +').errors).not.toEqual([]);
    expect(parsePromql('max by (queue) (workflow_queue_jobs)').metricNames).toEqual([
      'workflow_queue_jobs',
    ]);
  });

  it('has the alerts README "Monitoring kit" describes', () => {
    const rules = parseYaml(readFileSync('deploy/prometheus/alerts.yaml', 'utf8')) as RuleFile;
    const alerts = rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual([
      'WorkflowExecutionFailureRateHigh',
      'WorkflowExecutionsStuck',
      'WorkflowQueueDepthGrowing',
      'WorkflowExternalTasksUnpolled',
      'WorkflowRecoverySweepNotRunning',
      'WorkflowServiceNotReady',
    ]);
  });

  it('every metric the kit names is in a scrape after executions and external tasks ran', async () => {
    await runExecutions();
    let metrics = await scrape();
    // The relay counts changes a moment after they commit; the sweep runs every 200 ms.
    await waitUntil(async () => {
      metrics = await scrape();
      return (
        sampled(metrics, 'workflow_executions_failed_total') &&
        sampled(metrics, 'workflow_step_duration_seconds_bucket') &&
        metrics.samples.some(
          (s) => s.name === 'workflow_recovery_sweeps_total' && s.labels.leader === 'true',
        ) &&
        metrics.samples.some(
          (s) => s.name === 'workflow_external_tasks_waiting' && s.labels.step_type === 'kit_sign',
        )
      );
    }, 'the scrape shows executions, steps, sweeps and the waiting task');

    const names = new Set(kitExpressions().flatMap(({ expr }) => parsePromql(expr).metricNames));
    const missing = [...names].filter((name) => !declared(metrics, name));
    expect(missing, 'metrics the kit names but /metrics does not expose').toEqual([]);
    for (const name of [
      'workflow_ready',
      'workflow_task_last_poll_timestamp_seconds',
      'workflow_queue_jobs',
      'workflow_workers_online',
    ]) {
      expect(sampled(metrics, name), name).toBe(true);
    }
    // The metrics added for the kit (src/monitoring/probe-metrics.ts) report what happened.
    const sample = (name: string, stepType?: string) =>
      metrics.samples.find((s) => s.name === name && s.labels.step_type === stepType)?.value;
    expect(sample('workflow_ready')).toBe(1);
    expect(sample('workflow_external_tasks_waiting', 'kit_sign')).toBe(1);
    const polledAgo =
      Date.now() / 1000 - (sample('workflow_task_last_poll_timestamp_seconds', 'kit_sign') ?? 0);
    expect(polledAgo).toBeGreaterThanOrEqual(0);
    expect(polledAgo).toBeLessThan(60);
  });
});
