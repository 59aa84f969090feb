import { api } from './api.js';
import { announce, h } from './dom.js';
import { errorBox } from './view.js';

/**
 * A bulk action on what the executions list shows (README "Operations"): the list's filter
 * goes to a dry run first, whose count and sample the person checks, and only then to the
 * operation, whose progress is shown until it ends (and which can be stopped).
 */

const ACTIONS = ['cancel', 'retry', 'pause', 'resume', 'delete'];
const POLL_MS = 500;

/** The operation's counts as one sentence. */
function progressText(op) {
  const skipped = Object.entries(op.skipped_by_reason ?? {})
    .map(([reason, count]) => `${count} ${reason.replaceAll('_', ' ')}`)
    .join(', ');
  return (
    `${op.status}: ${op.done} of ${op.matched}${op.counting ? '+' : ''} done, ` +
    `${op.skipped} skipped${skipped ? ` (${skipped})` : ''}, ${op.failed} failed`
  );
}

/** Polls the operation until it ends or the view is left; `onEnd` runs once it ended. */
function follow(op, output, bar, stop, signal, onEnd) {
  const show = (current) => {
    output.textContent = progressText(current);
    bar.max = Math.max(current.matched, 1);
    bar.value = current.done + current.skipped + current.failed;
  };
  show(op);
  const tick = async () => {
    if (signal.aborted) return;
    try {
      const current = await api(`/operations/${encodeURIComponent(op.id)}`, { signal });
      show(current);
      if (current.status !== 'running') {
        stop.hidden = true;
        announce(`Bulk ${current.action} ${current.status}`);
        onEnd();
        return;
      }
    } catch (error) {
      if (signal.aborted) return;
      output.textContent = `Could not read the operation: ${error.message}`;
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

/**
 * The panel for `filter` (the list's filter as GET /executions fields). Empty filters get no
 * panel: acting on every execution is for the API, said explicitly with {"all": true}.
 */
export function bulkPanel(filter, signal, onChange) {
  const section = h('section', { class: 'bulk', 'aria-labelledby': 'bulk-heading' });
  const heading = h('h2', { id: 'bulk-heading' }, 'Bulk action on these executions');
  if (Object.keys(filter).length === 0) {
    section.append(heading, h('p', {}, 'Filter the list first: a bulk action acts on its filter.'));
    return section;
  }
  const action = h(
    'select',
    { id: 'bulk-action', name: 'action' },
    ACTIONS.map((value) => h('option', { value }, value)),
  );
  const reason = h('input', { id: 'bulk-reason', name: 'reason', placeholder: 'optional' });
  const preview = h('div', { id: 'bulk-preview', 'aria-live': 'polite' });
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Bulk action',
      onsubmit: (event) => {
        event.preventDefault();
        showDryRun().catch((error) => preview.replaceChildren(errorBox(error)));
      },
    },
    h('label', { for: 'bulk-action' }, 'Action'),
    action,
    h('label', { for: 'bulk-reason' }, 'Reason'),
    reason,
    h('button', { type: 'submit', id: 'bulk-preview-button' }, 'Preview'),
  );

  const body = () => ({
    action: action.value,
    filter,
    ...(reason.value.trim() ? { reason: reason.value.trim() } : {}),
  });

  async function showDryRun() {
    const asked = body();
    const dry = await api('/executions/bulk', {
      method: 'POST',
      body: { ...asked, dry_run: true },
    });
    const run = h(
      'button',
      { type: 'button', id: 'bulk-run', disabled: dry.matched === 0 },
      `${asked.action} ${dry.matched} execution${dry.matched === 1 ? '' : 's'}`,
    );
    run.addEventListener('click', () => {
      run.disabled = true;
      start(asked).catch((error) => preview.replaceChildren(errorBox(error)));
    });
    preview.replaceChildren(
      h(
        'p',
        { id: 'bulk-count' },
        `${dry.matched} execution(s) match; ${asked.action} would touch these first:`,
      ),
      h(
        'ul',
        { id: 'bulk-sample' },
        dry.sample.map((id) => h('li', {}, h('code', {}, id))),
      ),
      h('p', {}, run),
    );
  }

  async function start(asked) {
    const op = await api('/executions/bulk', { method: 'POST', body: asked });
    const output = h('output', { id: 'bulk-progress' });
    const bar = h('progress', { 'aria-label': 'Bulk operation progress' });
    const stop = h('button', { type: 'button', id: 'bulk-stop' }, 'Stop');
    stop.addEventListener('click', () => {
      api(`/operations/${encodeURIComponent(op.id)}/cancel`, { method: 'POST' }).catch((error) =>
        preview.append(errorBox(error)),
      );
    });
    preview.replaceChildren(h('p', {}, `Operation ${op.id}`), bar, h('p', {}, output, ' ', stop));
    follow(op, output, bar, stop, signal, onChange);
  }

  section.append(heading, form, preview);
  return section;
}
