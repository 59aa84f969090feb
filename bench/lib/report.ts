import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { round } from './util.js';

/**
 * One figure with its same-run baseline. `ratio` is always value / baseline; `target` says
 * which way it must go (">= 0.8": at least 0.8x; "<= 2": at most 2x), null when none is set.
 */
export interface Workload {
  name: string;
  value: number;
  unit: string;
  baseline_name: string;
  baseline: number;
  ratio: number;
  target: string | null;
  /** Whether the ratio meets the target (null: no target). */
  met: boolean | null;
  /** How it was measured and the figures behind it. */
  details?: Record<string, unknown>;
}

export interface Machine {
  cpu_model: string;
  cores: number;
  memory_gib: number;
  node: string;
  postgres: string;
  redis: string;
  os: string;
  date: string;
  load_average_start: number[];
  load_average_end?: number[];
  duration_seconds?: number;
}

export function machineInfo(versions: { postgres: string; redis: string }): Machine {
  return {
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memory_gib: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    postgres: versions.postgres,
    redis: versions.redis,
    os: `${os.type()} ${os.release()}`,
    date: new Date().toISOString(),
    load_average_start: os.loadavg().map((value) => round(value, 2)),
  };
}

export function workload(
  name: string,
  value: number,
  unit: string,
  baselineName: string,
  baseline: number,
  target: string | null,
  details?: Record<string, unknown>,
): Workload {
  const ratio = value / baseline;
  let met: boolean | null = null;
  if (target !== null) {
    const [, op, bound] = /^(>=|<=)\s*([\d.]+)$/.exec(target) ?? [];
    if (op === undefined || bound === undefined) throw new Error(`bad target ${target}`);
    met = op === '>=' ? ratio >= Number(bound) : ratio <= Number(bound);
  }
  return {
    name,
    value: round(value, 2),
    unit,
    baseline_name: baselineName,
    baseline: round(baseline, 2),
    ratio: round(ratio, 3),
    target,
    met,
    ...(details ? { details } : {}),
  };
}

/** Every number in `record` (and in the objects it holds) rounded to 3 decimals. */
export function roundAll(record: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).map(([key, value]) => [
      key,
      typeof value === 'number'
        ? round(value, 3)
        : typeof value === 'object' && value !== null && !Array.isArray(value)
          ? roundAll(value)
          : value,
    ]),
  );
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** The table printed at the end (and pasted into the README); `details.note` is its last column. */
export function formatTable(workloads: readonly Workload[]): string {
  const header = [
    'workload',
    'value',
    'unit',
    'baseline (same run)',
    'baseline',
    'ratio',
    'target',
    '',
    'note',
  ];
  const rows = workloads.map((w) => [
    w.name,
    String(w.value),
    w.unit,
    w.baseline_name,
    String(w.baseline),
    `${w.ratio}x`,
    w.target === null ? '-' : `${w.target}x`,
    w.met === null ? '' : w.met ? 'met' : 'MISSED',
    typeof w.details?.note === 'string' ? w.details.note : '',
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const numeric = new Set([1, 4, 5]);
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => pad(cell, widths[i] ?? 0, numeric.has(i))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (numeric.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

export async function writeResults(
  file: string,
  machine: Machine,
  workloads: readonly Workload[],
  failedPhases: readonly string[],
  /** Figures a phase reports apart from its rows (`foreach`), by name. */
  sections: Record<string, unknown> = {},
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const body = {
    machine,
    workloads,
    ...sections,
    ...(failedPhases.length > 0 ? { failed_phases: failedPhases } : {}),
  };
  await writeFile(file, `${JSON.stringify(body, null, 2)}\n`);
}
