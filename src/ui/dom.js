/** Small DOM helpers and formatters: every text goes in as text, never as HTML. */

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** An HTML element: h('a', { href: '#/' }, 'Home'). */
export function h(tag, attributes, ...children) {
  return apply(document.createElement(tag), attributes, children);
}

/** An SVG element. */
export function s(tag, attributes, ...children) {
  return apply(document.createElementNS(SVG_NS, tag), attributes, children);
}

/** Seconds as "850 ms", "12.3 s", "4 min 05 s". */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds % 60);
  return `${minutes} min ${String(rest).padStart(2, '0')} s`;
}

/** An ISO timestamp in the reader's locale, with the exact value kept for machines. */
export function timeElement(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return h('time', { datetime: date.toISOString() }, date.toLocaleString());
}

export function formatPercent(rate) {
  return rate === null || rate === undefined ? '–' : `${(rate * 100).toFixed(1)} %`;
}

/** A status shown as text and colour (never colour alone). */
export function statusBadge(status, attributes = {}) {
  return h(
    'span',
    { class: `badge status-${status}`, dataset: { status }, ...attributes },
    status.replace('_', ' '),
  );
}

/** Seconds between two ISO timestamps (to now when the end is missing). */
export function secondsBetween(start, end) {
  if (!start) return null;
  const to = end ? Date.parse(end) : Date.now();
  return Math.max(0, (to - Date.parse(start)) / 1000);
}

/** Says something to screen reader users without moving their focus. */
export function announce(message) {
  const region = document.getElementById('announcer');
  if (region) region.textContent = message;
}
