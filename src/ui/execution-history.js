import { api } from './api.js';
import { h, statusBadge, timeElement } from './dom.js';

/**
 * An execution's history as a timeline (GET /executions/{id}/history): its start, each step's
 * start, wait and end, every manual action with who, when and why (an edit's values before and
 * after), and its end. Refreshed when the execution changes, not on every step event.
 */

const PAGE = 500;

/** One entry's words: what happened, and to what. */
function describe(entry) {
  switch (entry.kind) {
    case 'started':
      return [`Started by ${entry.trigger ?? 'api'}`, entry.caller ? ` (${entry.caller})` : ''];
    case 'step_started':
      return [
        `Step ${entry.step_id} started`,
        entry.attempt > 1 ? ` (attempt ${entry.attempt})` : '',
      ];
    case 'step_waiting':
      return [`Step ${entry.step_id} waits`, entry.wait_reason ? `: ${entry.wait_reason}` : ''];
    case 'step_ended':
      return [
        `Step ${entry.step_id} `,
        statusBadge(entry.step_status ?? 'completed'),
        entry.error?.message ? `: ${entry.error.message}` : '',
      ];
    case 'action':
      return [
        h('strong', {}, entry.action),
        ` by ${entry.actor ?? 'unknown'}`,
        entry.reason ? `: “${entry.reason}”` : '',
      ];
    case 'ended':
      return ['Ended ', statusBadge(entry.status ?? 'completed')];
    default:
      return [entry.kind];
  }
}

/** An edit's or upgrade's record, to open. */
function detailOf(entry) {
  if (!entry.detail || Object.keys(entry.detail).length === 0) return null;
  return h(
    'details',
    {},
    h('summary', {}, 'Details'),
    h('pre', { class: 'run-data' }, JSON.stringify(entry.detail, null, 2)),
  );
}

export function historyBox(executionId) {
  const list = h('ol', { class: 'history', id: 'history' });
  const box = h(
    'section',
    { 'aria-labelledby': 'history-heading' },
    h('h2', { id: 'history-heading' }, 'History'),
    list,
  );
  let loading = false;
  const refresh = async () => {
    if (loading) return;
    loading = true;
    try {
      const page = await api(
        `/executions/${encodeURIComponent(executionId)}/history?limit=${PAGE}`,
      );
      list.replaceChildren(
        ...page.items.map((entry) =>
          h(
            'li',
            { dataset: { kind: entry.kind, ...(entry.action ? { action: entry.action } : {}) } },
            timeElement(entry.at),
            ' ',
            ...describe(entry),
            detailOf(entry),
          ),
        ),
        ...(page.next_cursor ? [h('li', {}, `… the first ${PAGE} entries are shown`)] : []),
      );
    } catch {
      // The timeline keeps its last answer; the page's other panels report connection trouble.
    } finally {
      loading = false;
    }
  };
  return { box, refresh };
}
