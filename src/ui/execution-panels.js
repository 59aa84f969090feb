import { dagSvg, timelineSvg } from './charts.js';
import { formatSeconds, h, secondsBetween, statusBadge, timeElement } from './dom.js';
import { definitionList, table } from './view.js';

/**
 * What the execution view shows, drawn from its state alone: the live view redraws all of it
 * on each change, so these functions keep no state of their own.
 */

const hasItem = (run) => run.item_index !== null && run.item_index !== undefined;

/** The latest iteration's own run of each step (for_each items aside), by step id. */
function latestOwnRuns(runs) {
  const latest = new Map();
  for (const run of runs.values()) {
    if (hasItem(run)) continue;
    const current = latest.get(run.step_id);
    if (!current || (run.iteration ?? 0) >= (current.iteration ?? 0)) latest.set(run.step_id, run);
  }
  return latest;
}

function summary(execution, connection) {
  return [
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
      // Steps read the execution's input (and earlier outputs): no run keeps an input of its own.
      ['Input', dataCell({ input: execution.input_data }, '__input__')],
    ]),
  ];
}

/** Runs whose data is open: kept across redraws, which rebuild the table on each change. */
const openData = new Set();

/** Data of the execution or of a run (input, output, error), to open and copy. */
function dataCell(parts, key) {
  const data = Object.fromEntries(
    Object.entries(parts).filter(([, value]) => value !== undefined && value !== null),
  );
  if (Object.keys(data).length === 0) return '–';
  const text = JSON.stringify(data, null, 2);
  const copy = h('button', { type: 'button', class: 'copy' }, 'Copy');
  copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(text).then(
      () => {
        copy.textContent = 'Copied';
      },
      () => {
        copy.textContent = 'Copy failed';
      },
    );
  });
  const details = h(
    'details',
    { open: openData.has(key) },
    h('summary', {}, 'Open'),
    h('pre', { class: 'run-data' }, text),
    copy,
  );
  details.addEventListener('toggle', () => {
    if (details.open) openData.add(key);
    else openData.delete(key);
  });
  return details;
}

function detail(run) {
  if (run.error && typeof run.error === 'object') return run.error.message ?? '';
  return run.wait_reason ?? '';
}

/** Every run (items and iterations included), one table row each. */
function stepRunsTable(workflow, runs) {
  const rows = [...runs.values()].map((run) => {
    const step = workflow.steps.find((candidate) => candidate.id === run.step_id);
    const label = `${step?.name ?? run.step_id}${hasItem(run) ? ` [${run.item_index}]` : ''}${run.iteration ? ` (iteration ${run.iteration})` : ''}`;
    return { ...run, label, step_type: step?.step_type ?? run.step_type ?? '–' };
  });
  return table(
    'Step runs',
    ['Step', 'Type', 'Status', 'Attempts', 'Started', 'Duration', 'Detail', 'Data'],
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
          run.started_at ? formatSeconds(secondsBetween(run.started_at, run.completed_at)) : '–',
        ),
        h('td', {}, detail(run)),
        h('td', {}, dataCell({ output: run.output, error: run.error }, run.label)),
      ),
    ),
    { id: 'step-runs' },
  );
}

/** GET /executions/{id}/diagnosis as a panel: the execution's summary, then each held run. */
function diagnosisPanel(diagnosis) {
  if (!diagnosis) return [];
  const held = diagnosis.steps.filter((step) => step.blocked_by !== null);
  return [
    h('h2', {}, 'Why is it waiting?'),
    h('p', { id: 'diagnosis-summary' }, diagnosis.summary),
    ...(held.length === 0
      ? []
      : [
          h(
            'ul',
            { id: 'diagnosis-steps' },
            ...held.map((step) =>
              h(
                'li',
                { 'data-step-id': step.step_id, 'data-kind': step.blocked_by.kind },
                h('strong', {}, step.step_id),
                ` (${step.blocked_by.kind}): ${step.summary}`,
              ),
            ),
          ),
        ]),
  ];
}

/**
 * The execution's panels: summary, why it waits, step graph, step runs and timeline.
 * @param {{ execution: any, workflow: any }} state the stream's snapshot, kept up to date
 * @param {Map<string, any>} runs every step run, by run key
 * @param {Node} connection the stream's connection status (kept across redraws)
 * @param {any} diagnosis the latest GET /executions/{id}/diagnosis answer, if any
 */
export function executionPanels(state, runs, connection, diagnosis) {
  const { execution, workflow } = state;
  const own = latestOwnRuns(runs);
  const steps = workflow.steps.map((step) => ({ ...step, run: own.get(step.id) }));
  return [
    ...summary(execution, connection),
    ...diagnosisPanel(diagnosis),
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
    stepRunsTable(workflow, runs),
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
  ];
}
