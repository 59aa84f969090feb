import { ApiError } from './api.js';
import { h } from './dom.js';

/** What every view shares: the <main> it renders into, error boxes, tables and figures. */

export const main = document.getElementById('main');

/** Replaces the view's content; moves focus to its heading so keyboard users land there. */
export function render(title, ...content) {
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...content);
  document.title = `${title} · Workflow Service`;
  heading.focus({ preventScroll: true });
}

/** render() for an async view: a no-op once the reader has navigated elsewhere. */
export function painter(signal) {
  return (...args) => {
    if (!signal.aborted) render(...args);
  };
}

export function errorBox(error) {
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

export function table(caption, headers, rows, attributes = {}) {
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

export function definitionList(entries, attributes = {}) {
  return h(
    'dl',
    { class: 'figures', ...attributes },
    entries.map(([term, value]) => h('div', {}, h('dt', {}, term), h('dd', {}, value))),
  );
}

/** Runs `task` for each item with at most `limit` at once. */
export async function mapLimited(items, limit, task) {
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
