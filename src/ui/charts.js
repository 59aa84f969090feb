import { formatSeconds, s, secondsBetween } from './dom.js';

/** SVG drawings: the step graph, the step timeline and duration bars. */

const NODE_WIDTH = 168;
const NODE_HEIGHT = 56;
const COLUMN_GAP = 56;
const ROW_GAP = 18;
const PAD = 12;

/**
 * The steps as a left-to-right graph: a step's column is the length of its longest chain of
 * dependencies; within a column, definition order.
 * @param {Array<{ id: string, name: string, step_type: string, depends_on: string[] }>} steps
 * @param {(stepId: string) => string} statusOf
 */
export function dagSvg(steps, statusOf) {
  const byId = new Map(steps.map((step) => [step.id, step]));
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = (byId.get(id)?.depends_on ?? []).filter((dep) => byId.has(dep));
    const value = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((dep) => depthOf(dep, seen)));
    depth.set(id, value);
    return value;
  };
  const columns = [];
  for (const step of steps) {
    const column = depthOf(step.id);
    columns[column] ??= [];
    columns[column].push(step);
  }
  const position = new Map();
  columns.forEach((column, x) => {
    column.forEach((step, y) => {
      position.set(step.id, {
        x: PAD + x * (NODE_WIDTH + COLUMN_GAP),
        y: PAD + y * (NODE_HEIGHT + ROW_GAP),
      });
    });
  });
  const rows = Math.max(1, ...columns.map((column) => column?.length ?? 0));
  const width =
    PAD * 2 + columns.length * NODE_WIDTH + Math.max(0, columns.length - 1) * COLUMN_GAP;
  const height = PAD * 2 + rows * NODE_HEIGHT + (rows - 1) * ROW_GAP;

  const edges = [];
  for (const step of steps) {
    const to = position.get(step.id);
    for (const dep of step.depends_on) {
      const from = position.get(dep);
      if (!from || !to) continue;
      const x1 = from.x + NODE_WIDTH;
      const y1 = from.y + NODE_HEIGHT / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_HEIGHT / 2;
      const bend = (x2 - x1) / 2;
      edges.push(
        s('path', {
          class: 'edge',
          d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
          'marker-end': 'url(#arrow)',
        }),
      );
    }
  }
  const nodes = steps.map((step) => {
    const { x, y } = position.get(step.id);
    const status = statusOf(step.id);
    return s(
      'g',
      {
        class: `node status-${status}`,
        transform: `translate(${x},${y})`,
        dataset: { stepId: step.id },
      },
      s('title', {}, `${step.name} (${step.step_type}): ${status}`),
      s('rect', { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 8 }),
      s('text', { x: 10, y: 22, class: 'node-name' }, truncate(step.name, 20)),
      s(
        'text',
        { x: 10, y: 42, class: 'node-status' },
        `${status.replace('_', ' ')} · ${step.step_type}`,
      ),
    );
  });
  const summary = steps.map((step) => `${step.name}: ${statusOf(step.id)}`).join('; ');
  return s(
    'svg',
    {
      class: 'dag',
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': `Step graph. ${summary}`,
    },
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto',
        },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }),
      ),
    ),
    edges,
    nodes,
  );
}

function truncate(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/**
 * Each step run as a bar from its start to its end (or now), on the execution's time axis.
 * @param {Array<{ label: string, status: string, started_at: string | null, completed_at: string | null }>} runs
 * @param {string | null} start
 * @param {string | null} end
 */
export function timelineSvg(runs, start, end) {
  const started = runs.filter((run) => run.started_at);
  const width = 640;
  const labelWidth = 150;
  const rowHeight = 26;
  const origin = Date.parse(start ?? started[0]?.started_at ?? new Date().toISOString());
  const total = Math.max(secondsBetween(new Date(origin).toISOString(), end) ?? 0, 0.001);
  const scale = (width - labelWidth - 90) / total;
  const height = Math.max(1, started.length) * rowHeight + 24;
  const rows = started.map((run, index) => {
    const offset = (Date.parse(run.started_at) - origin) / 1000;
    const duration = secondsBetween(run.started_at, run.completed_at) ?? 0;
    const y = index * rowHeight;
    const barX = labelWidth + Math.max(0, offset) * scale;
    const barWidth = Math.max(2, duration * scale);
    return s(
      'g',
      { class: `row status-${run.status}` },
      s('title', {}, `${run.label}: ${run.status}, ${formatSeconds(duration)}`),
      s('text', { x: 0, y: y + 17, class: 'label' }, truncate(run.label, 22)),
      s('rect', { x: barX, y: y + 5, width: barWidth, height: rowHeight - 10, rx: 3 }),
      s('text', { x: barX + barWidth + 6, y: y + 17, class: 'value' }, formatSeconds(duration)),
    );
  });
  return s(
    'svg',
    {
      class: 'chart timeline',
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `Step durations: ${started
        .map(
          (run) =>
            `${run.label} ${formatSeconds(secondsBetween(run.started_at, run.completed_at))}`,
        )
        .join(', ')}`,
    },
    rows,
    s('text', { x: labelWidth, y: height - 4, class: 'axis' }, `0 – ${formatSeconds(total)}`),
  );
}

/**
 * Horizontal bars, one per item, scaled to the largest value.
 * @param {Array<{ label: string, value: number | null, status?: string }>} items
 * @param {string} title
 */
export function barsSvg(items, title) {
  const width = 640;
  const labelWidth = 150;
  const rowHeight = 22;
  const values = items.map((item) => item.value ?? 0);
  const max = Math.max(0.001, ...values);
  const scale = (width - labelWidth - 80) / max;
  const height = Math.max(1, items.length) * rowHeight + 4;
  return s(
    'svg',
    { class: 'chart bars', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title },
    items.map((item, index) => {
      const y = index * rowHeight;
      const barWidth = Math.max(1, (item.value ?? 0) * scale);
      return s(
        'g',
        { class: `row status-${item.status ?? 'none'}` },
        s('title', {}, `${item.label}: ${formatSeconds(item.value)}`),
        s('text', { x: 0, y: y + 15, class: 'label' }, truncate(item.label, 22)),
        s('rect', { x: labelWidth, y: y + 4, width: barWidth, height: rowHeight - 8, rx: 2 }),
        s(
          'text',
          { x: labelWidth + barWidth + 6, y: y + 15, class: 'value' },
          formatSeconds(item.value),
        ),
      );
    }),
  );
}
