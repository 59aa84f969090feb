import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/project.js';

/** The figures of the last fault-suite run: test-results/fault-figures.json. */
export const FIGURES_FILE = path.join(projectRoot, 'test-results', 'fault-figures.json');

/** What every scenario reports, plus figures of its own. */
export interface Figures {
  executions: number;
  kills: number;
  restarts: number;
  rerun_attempts: number;
  lost: number;
  duplicated_completions: number;
  seconds: number;
  [other: string]: number | string | boolean;
}

interface FiguresFile {
  started_at?: string;
  finished_at?: string;
  scenarios: Record<string, Figures>;
  totals?: Record<string, number>;
}

function read(): FiguresFile {
  try {
    return JSON.parse(readFileSync(FIGURES_FILE, 'utf8')) as FiguresFile;
  } catch {
    return { scenarios: {} };
  }
}

function write(figures: FiguresFile): void {
  mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
  writeFileSync(FIGURES_FILE, `${JSON.stringify(figures, null, 2)}\n`);
}

/** Starts a fresh figures file (the suite's global setup). */
export function resetFigures(): void {
  rmSync(FIGURES_FILE, { force: true });
  write({ started_at: new Date().toISOString(), scenarios: {} });
}

/** Adds one scenario's figures (test files run one at a time, so read-modify-write is safe). */
export function recordFigures(scenario: string, figures: Figures): void {
  const all = read();
  all.scenarios[scenario] = figures;
  write(all);
  console.log(`[faults] ${scenario}: ${JSON.stringify(figures)}`);
}

const TOTALLED = [
  'executions',
  'kills',
  'restarts',
  'rerun_attempts',
  'lost',
  'duplicated_completions',
] as const;

/** Adds the totals and prints one line per scenario (the suite's global teardown). */
export function finishFigures(): string {
  const all = read();
  const totals: Record<string, number> = {};
  for (const key of TOTALLED) {
    totals[key] = Object.values(all.scenarios).reduce((sum, figures) => sum + figures[key], 0);
  }
  all.totals = totals;
  all.finished_at = new Date().toISOString();
  write(all);
  const lines = Object.entries(all.scenarios).map(
    ([scenario, figures]) =>
      `  ${scenario.padEnd(26)} ${TOTALLED.map((key) => `${key}=${figures[key]}`).join(' ')} (${figures.seconds} s)`,
  );
  return [
    `Fault suite figures (${FIGURES_FILE}):`,
    ...lines,
    `  ${'total'.padEnd(26)} ${TOTALLED.map((key) => `${key}=${totals[key]}`).join(' ')}`,
  ].join('\n');
}
