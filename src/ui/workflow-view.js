import { api } from './api.js';
import { barsSvg } from './charts.js';
import { formatPercent, formatSeconds, h, timeElement } from './dom.js';
import { definitionList, errorBox, painter, table } from './view.js';

/** One workflow: its figures, its steps' statistics and its recent durations. */

export async function workflowView(id, signal) {
  const paint = painter(signal);
  paint('Workflow', h('p', {}, 'Loading…'));
  try {
    const [workflow, stats, recent] = await Promise.all([
      api(`/workflows/${encodeURIComponent(id)}`),
      api(`/workflows/${encodeURIComponent(id)}/stats`),
      api(`/executions?workflow_id=${encodeURIComponent(id)}&limit=30`),
    ]);
    const steps = stats.steps.map((step) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, step.name),
        h('td', {}, step.step_type ?? '–'),
        h('td', { class: 'number' }, step.runs),
        h('td', { class: 'number' }, step.failures),
        h('td', { class: 'number' }, step.retries),
        h('td', { class: 'number' }, step.skipped),
        h('td', { class: 'number' }, formatSeconds(step.average_duration_seconds)),
      ),
    );
    const ended = recent.items.filter((execution) => execution.duration_seconds !== null);
    paint(
      workflow.name,
      h(
        'p',
        { class: 'toolbar' },
        `${workflow.workflow_type.replace('_', ' ')} · ${workflow.status} · version ${workflow.version} · `,
        h('a', { href: `#/executions?workflow_id=${encodeURIComponent(id)}` }, 'Its executions'),
      ),
      definitionList([
        ['Executions', stats.execution_count],
        ['Completed', stats.success_count],
        ['Failed or timed out', stats.failure_count],
        ['Cancelled', stats.cancelled_count],
        ['Not ended', stats.running_count],
        ['Success rate', formatPercent(stats.success_rate)],
        ['Average', formatSeconds(stats.average_duration_seconds)],
        [
          'p50 / p95',
          `${formatSeconds(stats.p50_duration_seconds)} / ${formatSeconds(stats.p95_duration_seconds)}`,
        ],
        ['Last run', timeElement(stats.last_execution_at)],
      ]),
      h('h2', {}, 'Steps'),
      table(
        `Per step, over the last ${stats.window_executions} executions`,
        ['Step', 'Type', 'Runs', 'Failures', 'Retries', 'Skipped', 'Average'],
        steps,
      ),
      h('h2', {}, 'Recent durations'),
      ended.length > 0
        ? h(
            'figure',
            {},
            barsSvg(
              ended.map((execution) => ({
                label: new Date(execution.created_at).toLocaleTimeString(),
                value: execution.duration_seconds,
                status: execution.status,
              })),
              'Durations of the most recent ended executions',
            ),
            h('figcaption', {}, 'Most recent ended executions, newest first.'),
          )
        : h('p', {}, 'No ended execution yet.'),
    );
  } catch (error) {
    paint('Workflow', errorBox(error));
  }
}
