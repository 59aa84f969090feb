import { api, openExecutionStream } from './api.js';
import { dagSvg, timelineSvg } from './charts.js';
import { announce, formatSeconds, h, secondsBetween, statusBadge, timeElement } from './dom.js';
import { definitionList, errorBox, render, table } from './view.js';

/** One execution, live: a snapshot from its event stream, then each change as it happens. */

const ENDED = new Set(['completed', 'failed', 'cancelled', 'timed_out']);

const runKey = (run) => `${run.step_id}|${run.iteration ?? 0}|${run.item_index ?? ''}`;

export function executionView(id) {
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
