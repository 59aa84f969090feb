import { api } from './api.js';
import { bulkPanel } from './bulk-panel.js';
import { barsSvg } from './charts.js';
import { announce, formatSeconds, h, statusBadge, timeElement } from './dom.js';
import { EXECUTION_STATUSES } from './statuses.js';
import { errorBox, main, painter } from './view.js';

/** The executions list: filters, pages of executions ("Load more") and their durations. */

/** `order=4711, tenant=acme` as pairs; a part without `=` is ignored. */
function labelPairs(text) {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.includes('='))
    .map((part) => [
      part.slice(0, part.indexOf('=')).trim(),
      part.slice(part.indexOf('=') + 1).trim(),
    ]);
}

/** An execution's labels as `key=value` tags. */
function labelTags(labels) {
  return Object.entries(labels ?? {}).map(([key, value]) =>
    h('span', { class: 'tag' }, `${key}=${value}`),
  );
}

/** The filters; applying them navigates, so the list is a link that can be kept. */
function filterForm(workflows, workflowId, status, labels) {
  return h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Filter executions',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const query = new URLSearchParams();
        for (const key of ['workflow_id', 'status', 'labels']) {
          const value = String(data.get(key) ?? '');
          if (value) query.set(key, value);
        }
        location.hash = `#/executions${query.size > 0 ? `?${query}` : ''}`;
      },
    },
    h('label', { for: 'filter-workflow' }, 'Workflow'),
    h(
      'select',
      { id: 'filter-workflow', name: 'workflow_id' },
      h('option', { value: '' }, 'All workflows'),
      workflows.map((workflow) =>
        h('option', { value: workflow.id, selected: workflow.id === workflowId }, workflow.name),
      ),
    ),
    h('label', { for: 'filter-status' }, 'Status'),
    h(
      'select',
      { id: 'filter-status', name: 'status' },
      h('option', { value: '' }, 'Any status'),
      EXECUTION_STATUSES.map((value) =>
        h('option', { value, selected: value === status }, value.replace('_', ' ')),
      ),
    ),
    h('label', { for: 'filter-labels' }, 'Labels'),
    h('input', {
      id: 'filter-labels',
      name: 'labels',
      value: labels,
      placeholder: 'order=4711, tenant=acme',
    }),
    h('button', { type: 'submit' }, 'Apply'),
  );
}

export async function executionsView(params, signal) {
  const paint = painter(signal);
  paint('Executions', h('p', {}, 'Loading…'));
  const workflowId = params.get('workflow_id') ?? '';
  const status = params.get('status') ?? '';
  const labels = params.get('labels') ?? '';
  let workflows = [];
  try {
    workflows = (await api('/workflows?limit=100')).items;
  } catch {
    // The filter still works with a typed id.
  }
  const names = new Map(workflows.map((workflow) => [workflow.id, workflow.name]));
  const form = filterForm(workflows, workflowId, status, labels);
  const body = h('tbody', {});
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const chart = h('figure', { hidden: true });
  const list = [];
  let cursor = null;

  // The list's filter as API fields: the list reads it, a bulk action acts on it.
  const filter = {
    ...(workflowId ? { workflow_id: workflowId } : {}),
    ...(status ? { status } : {}),
    ...Object.fromEntries(labelPairs(labels).map(([key, value]) => [`label.${key}`, value])),
  };

  const load = async () => {
    const query = new URLSearchParams({ limit: '25' });
    for (const [key, value] of Object.entries(filter)) query.set(key, value);
    if (cursor) query.set('cursor', cursor);
    const page = await api(`/executions?${query}`);
    for (const execution of page.items) {
      list.push(execution);
      body.append(
        h(
          'tr',
          {},
          h(
            'th',
            { scope: 'row' },
            h('a', { href: `#/executions/${encodeURIComponent(execution.id)}` }, execution.id),
          ),
          h('td', {}, names.get(execution.workflow_id) ?? execution.workflow_id),
          h('td', {}, statusBadge(execution.status)),
          h('td', {}, labelTags(execution.labels)),
          h('td', {}, timeElement(execution.created_at)),
          h('td', { class: 'number' }, formatSeconds(execution.duration_seconds)),
        ),
      );
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const ended = list.filter((execution) => execution.duration_seconds !== null).slice(0, 40);
    chart.hidden = ended.length === 0;
    chart.replaceChildren(
      barsSvg(
        ended.map((execution) => ({
          label: execution.id,
          value: execution.duration_seconds,
          status: execution.status,
        })),
        'Durations of the listed ended executions',
      ),
      h('figcaption', {}, 'Durations of the listed ended executions.'),
    );
    if (list.length === 0)
      body.replaceChildren(h('tr', {}, h('td', { colspan: 6 }, 'No execution matches.')));
    announce(`${list.length} executions listed`);
  };
  more.addEventListener('click', () => load().catch((error) => main.append(errorBox(error))));
  // After a bulk action the list shows the executions as the action left them.
  const reload = () => {
    list.length = 0;
    cursor = null;
    body.replaceChildren();
    load().catch((error) => main.append(errorBox(error)));
  };

  try {
    await load();
    paint(
      'Executions',
      form,
      h(
        'table',
        {},
        h('caption', {}, 'Executions, newest first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Execution', 'Workflow', 'Status', 'Labels', 'Created', 'Duration'].map((header) =>
              h('th', { scope: 'col' }, header),
            ),
          ),
        ),
        body,
      ),
      h('p', {}, more),
      bulkPanel(filter, signal, reload),
      h('h2', {}, 'Durations'),
      chart,
    );
  } catch (error) {
    paint('Executions', form, errorBox(error));
  }
}
