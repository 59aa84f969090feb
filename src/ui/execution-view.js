import { api, openExecutionStream } from './api.js';
import { announce, h } from './dom.js';
import { actionsBox } from './execution-actions.js';
import { historyBox } from './execution-history.js';
import { executionPanels } from './execution-panels.js';
import { FINISHED_EXECUTION_STATUSES } from './statuses.js';
import { errorBox, render } from './view.js';

/** One execution, live: a snapshot from its event stream, then each change as it happens. */

const ENDED = new Set(FINISHED_EXECUTION_STATUSES);

const runKey = (run) => `${run.step_id}|${run.iteration ?? 0}|${run.item_index ?? ''}`;

export function executionView(id) {
  // Rendered once; live changes redraw `content` only, so focus and scroll stay put.
  const content = h('div', {}, h('p', {}, 'Connecting…'));
  // After an action the stream is opened again: a retried execution's stream had ended.
  const history = historyBox(id);
  const actions = actionsBox(() => {
    stream?.close();
    closed = false;
    connect();
    void history.refresh();
  });
  render(`Execution ${id}`, actions.box, content, history.box);
  /** @type {{ execution: any, workflow: any } | null} */
  let state = null;
  const runs = new Map();
  const connection = h('span', { class: 'connection', role: 'status' }, 'Connecting…');
  let stream = null;
  let closed = false;

  /** The latest diagnosis; refreshed after every change, one request at a time. */
  let diagnosis = null;
  let diagnosing = false;
  let diagnoseAgain = false;

  const draw = () => {
    if (!state) return;
    content.replaceChildren(...executionPanels(state, runs, connection, diagnosis));
    void actions.update(state);
  };

  const refreshDiagnosis = async () => {
    if (diagnosing) {
      diagnoseAgain = true;
      return;
    }
    diagnosing = true;
    try {
      do {
        diagnoseAgain = false;
        diagnosis = await api(`/executions/${encodeURIComponent(id)}/diagnosis`);
        draw();
      } while (diagnoseAgain && !closed);
    } catch {
      // The panel keeps its last answer; the stream's own errors are reported above it.
    } finally {
      diagnosing = false;
    }
  };

  /** Step events carry no outputs: once it ended, the runs' outputs are read once. */
  const fillOutputs = async () => {
    try {
      const ended = await api(`/executions/${encodeURIComponent(id)}`);
      for (const run of ended.steps ?? []) {
        const known = runs.get(runKey(run));
        if (known) Object.assign(known, { output: run.output, error: run.error });
      }
      draw();
    } catch {
      // The runs keep what the stream said.
    }
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
    void refreshDiagnosis();
    void history.refresh();
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
    void refreshDiagnosis();
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
    void refreshDiagnosis();
    void history.refresh();
    announce(`Execution ${change.status}`);
    if (ENDED.has(change.status)) {
      close('Ended');
      void fillOutputs();
    }
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
