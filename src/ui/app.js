import { ApiError, api, loadCredential, openExecutionStream, saveCredential } from './api.js';
import { barsSvg, dagSvg, timelineSvg } from './charts.js';
import {
  announce,
  formatPercent,
  formatSeconds,
  h,
  secondsBetween,
  statusBadge,
  timeElement,
} from './dom.js';

/**
 * The dashboard: a hash router over four views (overview, workflow, executions, execution).
 * Each view renders into <main>; leaving a view runs its cleanup (closes streams, timers).
 */

const EXECUTION_STATUSES = [
  'pending',
  'running',
  'waiting',
  'paused',
  'completed',
  'failed',
  'cancelled',
  'timed_out',
];
const ENDED = new Set(['completed', 'failed', 'cancelled', 'timed_out']);

const main = document.getElementById('main');
let cleanup = () => {};

/** Replaces the view's content; moves focus to its heading so keyboard users land there. */
function render(title, ...content) {
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...content);
  document.title = `${title} · Workflow Service`;
  heading.focus({ preventScroll: true });
}

/** render() for an async view: a no-op once the reader has navigated elsewhere. */
function painter(signal) {
  return (...args) => {
    if (!signal.aborted) render(...args);
  };
}

function errorBox(error) {
  const needsCredential =
    error instanceof ApiError && (error.status === 401 || error.status === 403);
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h(
      'p',
      {},
      needsCredential ? 'The API refused the request: ' : 'Could not load data: ',
      error.message,
    ),
    needsCredential
      ? h(
          'p',
          {},
          'Enter an API key or token with at least the viewer role above, then choose “Use”.',
        )
      : null,
  );
}

function table(caption, headers, rows, attributes = {}) {
  return h(
    'table',
    attributes,
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((header) => h('th', { scope: 'col' }, header)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.length > 0 ? rows : h('tr', {}, h('td', { colspan: headers.length }, 'None yet.')),
    ),
  );
}

function definitionList(entries, attributes = {}) {
  return h(
    'dl',
    { class: 'figures', ...attributes },
    entries.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))),
  );
}

/** Runs `task` for each item with at most `limit` at once. */
async function mapLimited(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]).catch((error) => ({ error }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// --- Overview -------------------------------------------------------------------------

async function overviewView(signal) {
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

// --- One workflow ---------------------------------------------------------------------

async function workflowView(id, signal) {
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

// --- Executions -----------------------------------------------------------------------

async function executionsView(params, signal) {
  const paint = painter(signal);
  paint('Executions', h('p', {}, 'Loading…'));
  const workflowId = params.get('workflow_id') ?? '';
  const status = params.get('status') ?? '';
  let workflows = [];
  try {
    workflows = (await api('/workflows?limit=100')).items;
  } catch {
    // The filter still works with a typed id.
  }
  const names = new Map(workflows.map((workflow) => [workflow.id, workflow.name]));
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Filter executions',
      onsubmit: (event) => {
        event.preventDefault();
        const data = new FormData(event.target);
        const query = new URLSearchParams();
        for (const key of ['workflow_id', 'status']) {
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
    h('button', { type: 'submit' }, 'Apply'),
  );
  const body = h('tbody', {});
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const chart = h('figure', { hidden: true });
  const list = [];
  let cursor = null;

  const load = async () => {
    const query = new URLSearchParams({ limit: '25' });
    if (workflowId) query.set('workflow_id', workflowId);
    if (status) query.set('status', status);
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
      body.replaceChildren(h('tr', {}, h('td', { colspan: 5 }, 'No execution matches.')));
    announce(`${list.length} executions listed`);
  };
  more.addEventListener('click', () => load().catch((error) => main.append(errorBox(error))));

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
            ['Execution', 'Workflow', 'Status', 'Created', 'Duration'].map((header) =>
              h('th', { scope: 'col' }, header),
            ),
          ),
        ),
        body,
      ),
      h('p', {}, more),
      h('h2', {}, 'Durations'),
      chart,
    );
  } catch (error) {
    paint('Executions', form, errorBox(error));
  }
}

// --- One execution, live --------------------------------------------------------------

const runKey = (run) => `${run.step_id}|${run.iteration ?? 0}|${run.item_index ?? ''}`;

function executionView(id) {
  // Rendered once; live changes redraw `content` only, so focus and scroll stay put.
  const content = h('div', {}, h('p', {}, 'Connecting…'));
  render(`Execution ${id}`, content);
  /** @type {{ execution: any, workflow: any } | null} */
  let state = null;
  const runs = new Map();
  const connection = h('span', { class: 'connection', role: 'status' }, 'Connecting…');
  let stream = null;
  let closed = false;

  const ownRuns = () => {
    // The latest iteration's own run of each step (for_each items aside).
    const latest = new Map();
    for (const run of runs.values()) {
      if (run.item_index !== null && run.item_index !== undefined) continue;
      const current = latest.get(run.step_id);
      if (!current || (run.iteration ?? 0) >= (current.iteration ?? 0))
        latest.set(run.step_id, run);
    }
    return latest;
  };

  const draw = () => {
    if (!state) return;
    const { execution, workflow } = state;
    const own = ownRuns();
    const steps = workflow.steps.map((step) => ({ ...step, run: own.get(step.id) }));
    const rows = [...runs.values()].map((run) => {
      const step = workflow.steps.find((candidate) => candidate.id === run.step_id);
      const label = `${step?.name ?? run.step_id}${run.item_index !== null && run.item_index !== undefined ? ` [${run.item_index}]` : ''}${run.iteration ? ` (iteration ${run.iteration})` : ''}`;
      return { ...run, label, step_type: step?.step_type ?? run.step_type ?? '–' };
    });
    const detail = (run) => {
      if (run.error && typeof run.error === 'object') return run.error.message ?? '';
      return run.wait_reason ?? '';
    };
    content.replaceChildren(
      h(
        'p',
        { class: 'toolbar' },
        'Status ',
        statusBadge(execution.status, { id: 'execution-status' }),
        ' · ',
        connection,
      ),
      definitionList([
        [
          'Workflow',
          h(
            'a',
            { href: `#/workflows/${encodeURIComponent(execution.workflow_id)}` },
            execution.workflow_id,
          ),
        ],
        ['Version', execution.workflow_version],
        ['Started', timeElement(execution.started_at)],
        ['Ended', timeElement(execution.completed_at)],
        [
          'Duration',
          formatSeconds(
            execution.duration_seconds ??
              secondsBetween(execution.started_at, execution.completed_at),
          ),
        ],
        ['Error', execution.error ?? '–'],
      ]),
      h('h2', {}, 'Steps'),
      h(
        'figure',
        { class: 'dag-figure' },
        dagSvg(workflow.steps, (stepId) => own.get(stepId)?.status ?? 'pending'),
        h(
          'figcaption',
          {},
          'Steps and their dependencies; the table below has the same, with details.',
        ),
      ),
      table(
        'Step runs',
        ['Step', 'Type', 'Status', 'Attempts', 'Started', 'Duration', 'Detail'],
        rows.map((run) =>
          h(
            'tr',
            { dataset: { stepId: run.step_id } },
            h('th', { scope: 'row' }, run.label),
            h('td', {}, run.step_type),
            h('td', {}, statusBadge(run.status)),
            h('td', { class: 'number' }, run.attempts ?? run.attempt ?? 0),
            h('td', {}, timeElement(run.started_at)),
            h(
              'td',
              { class: 'number' },
              run.started_at
                ? formatSeconds(secondsBetween(run.started_at, run.completed_at))
                : '–',
            ),
            h('td', {}, detail(run)),
          ),
        ),
        { id: 'step-runs' },
      ),
      h('h2', {}, 'Timeline'),
      h(
        'figure',
        {},
        timelineSvg(
          steps.filter((step) => step.run).map((step) => ({ label: step.name, ...step.run })),
          execution.started_at,
          execution.completed_at,
        ),
        h('figcaption', {}, 'When each step ran, from the start of the execution.'),
      ),
    );
  };

  const close = (message) => {
    closed = true;
    stream?.close();
    connection.textContent = message;
  };

  const onSnapshot = (event) => {
    state = JSON.parse(event.data);
    runs.clear();
    for (const run of state.execution.steps ?? []) runs.set(runKey(run), run);
    draw();
    if (ENDED.has(state.execution.status)) close('Ended');
    else connection.textContent = 'Live';
  };
  const onStep = (event) => {
    if (!state) return;
    const change = JSON.parse(event.data);
    const key = runKey(change);
    const run = runs.get(key) ?? {
      step_id: change.step_id,
      iteration: change.iteration,
      item_index: change.item_index,
    };
    Object.assign(run, {
      status: change.status,
      attempts: change.attempt,
      error: change.error,
      wait_reason: change.wait_reason,
      started_at: change.started_at ?? run.started_at ?? null,
      completed_at:
        change.status === 'completed' ||
        change.status === 'failed' ||
        change.status === 'skipped' ||
        change.status === 'cancelled'
          ? change.completed_at
          : null,
    });
    runs.set(key, run);
    draw();
    announce(`Step ${change.step_id} ${change.status}`);
  };
  const onExecution = (event) => {
    if (!state) return;
    const change = JSON.parse(event.data);
    Object.assign(state.execution, {
      status: change.status,
      error: change.error,
      completed_at: change.completed_at ?? null,
      duration_seconds: change.duration_seconds ?? null,
    });
    draw();
    announce(`Execution ${change.status}`);
    if (ENDED.has(change.status)) close('Ended');
  };

  const connect = () => {
    stream = openExecutionStream(id);
    stream.addEventListener('snapshot', onSnapshot);
    stream.addEventListener('step', onStep);
    stream.addEventListener('execution', onExecution);
    stream.addEventListener('open', () => {
      if (!closed) connection.textContent = 'Live';
    });
    stream.addEventListener('error', async () => {
      if (closed) return;
      if (stream.readyState === EventSource.CLOSED) {
        // Refused (401, 404...): ask the API why, then stop.
        close('Disconnected');
        try {
          await api(`/executions/${encodeURIComponent(id)}`);
          if (!state)
            render(`Execution ${id}`, errorBox(new Error('The live stream is unavailable.')));
        } catch (error) {
          render(`Execution ${id}`, errorBox(error));
        }
      } else {
        connection.textContent = 'Reconnecting…';
      }
    });
  };
  connect();
  return () => close('Closed');
}

// --- Router and credential form ---------------------------------------------------------

function route() {
  cleanup();
  const navigation = new AbortController();
  const { signal } = navigation;
  cleanup = () => navigation.abort();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query ?? '');
  const parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active =
      (parts[0] ?? 'overview') === link.dataset.nav ||
      (parts[0] === 'workflows' && link.dataset.nav === 'overview');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  // Views handle their own errors; the router only starts them.
  if (parts.length === 0) void overviewView(signal);
  else if (parts[0] === 'workflows' && parts[1]) void workflowView(parts[1], signal);
  else if (parts[0] === 'executions' && parts[1]) {
    const stop = executionView(parts[1]);
    cleanup = () => {
      navigation.abort();
      stop();
    };
  } else if (parts[0] === 'executions') void executionsView(params, signal);
  else
    render(
      'Not found',
      h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview')),
    );
}

function setUpCredentialForm() {
  const form = document.getElementById('auth-form');
  const kind = document.getElementById('auth-kind');
  const value = document.getElementById('auth-value');
  const status = document.getElementById('auth-state');
  const show = () => {
    const credential = loadCredential();
    status.textContent = credential
      ? `Using ${credential.kind === 'bearer' ? 'a bearer token' : 'an API key'}`
      : 'No credential';
    if (credential) kind.value = credential.kind;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const entered = value.value.trim();
    saveCredential(entered ? { kind: kind.value, value: entered } : null);
    value.value = '';
    show();
    route();
  });
  document.getElementById('auth-clear').addEventListener('click', () => {
    saveCredential(null);
    show();
    route();
  });
  show();
}

setUpCredentialForm();
window.addEventListener('hashchange', route);
route();
