import { api } from './api.js';
import { formatPercent, formatSeconds, h, timeElement } from './dom.js';
import { definitionList, errorBox, mapLimited, painter, table } from './view.js';

/** The overview: the service's figures and every workflow with its execution statistics. */

export async function overviewView(signal) {
  const paint = painter(signal);
  paint('Overview', h('p', {}, 'Loading…'));
  const refresh = h('button', { type: 'button', onclick: () => overviewView(signal) }, 'Refresh');
  try {
    const [stats, workflows] = await Promise.all([api('/stats'), api('/workflows?limit=50')]);
    const workflowStats = await mapLimited(workflows.items, 6, (workflow) =>
      api(`/workflows/${encodeURIComponent(workflow.id)}/stats`),
    );
    const queue = stats.queues?.[0];
    const rows = workflows.items.map((workflow, index) => {
      const figures = workflowStats[index];
      const ok = figures && !figures.error;
      return h(
        'tr',
        {},
        h(
          'th',
          { scope: 'row' },
          h('a', { href: `#/workflows/${encodeURIComponent(workflow.id)}` }, workflow.name),
        ),
        h('td', {}, workflow.workflow_type.replace('_', ' ')),
        h('td', {}, workflow.status),
        h('td', { class: 'number' }, ok ? figures.execution_count : '–'),
        h('td', { class: 'number' }, ok ? figures.running_count : '–'),
        h('td', { class: 'number' }, ok ? formatPercent(figures.success_rate) : '–'),
        h('td', { class: 'number' }, ok ? formatSeconds(figures.average_duration_seconds) : '–'),
        h('td', { class: 'number' }, ok ? formatSeconds(figures.p95_duration_seconds) : '–'),
        h('td', {}, ok ? timeElement(figures.last_execution_at) : '–'),
      );
    });
    paint(
      'Overview',
      h(
        'p',
        { class: 'toolbar' },
        `Figures as of ${new Date(stats.generated_at).toLocaleTimeString()}. `,
        refresh,
      ),
      h('h2', {}, 'Service'),
      definitionList([
        ['Executions', stats.executions.total],
        ['Not ended', stats.executions.running],
        ['Completed', stats.executions.by_status.completed],
        ['Failed', stats.executions.by_status.failed + stats.executions.by_status.timed_out],
        ['Started, last hour', stats.executions.started_last_hour],
        ['Finished per minute (5 min)', stats.throughput.finished_per_minute_last_5_minutes],
        [
          'Queue: waiting / active',
          queue ? `${queue.waiting + queue.prioritized} / ${queue.active}` : '–',
        ],
        ['Queue: delayed / failed', queue ? `${queue.delayed} / ${queue.failed}` : '–'],
        ['Workers online', stats.workers_online ?? '–'],
        ['Step queue latency', formatSeconds(stats.steps.average_queue_latency_seconds)],
        ['Step duration (1 h)', formatSeconds(stats.steps.average_duration_seconds)],
      ]),
      h('h2', {}, 'Workflows'),
      table(
        'Workflows with their execution statistics',
        [
          'Workflow',
          'Type',
          'Status',
          'Executions',
          'Not ended',
          'Success',
          'Average',
          'p95',
          'Last run',
        ],
        rows,
      ),
    );
  } catch (error) {
    paint('Overview', errorBox(error), h('p', {}, refresh));
  }
}
