import { roundAll, type Workload, workload } from '../lib/report.js';
import { round } from '../lib/util.js';
import { FOREACH_TARGET_RATIO, type ForeachFigures, type ForeachResult } from './foreach.js';
import type { CallFigures, ProbeLatencies } from './foreach-observe.js';

/** The for_each workload's rows of the results table (none when it was skipped). */
export function foreachWorkloads(result: ForeachResult): Workload[] {
  if ('skipped' in result) return [];
  return [...fanoutRows(result), ...meanwhileRows(result)];
}

/** Steps/s and RSS of the fan-out itself. */
function fanoutRows(f: ForeachFigures): Workload[] {
  const scale = `${f.items} noop items, for_each_concurrency ${f.concurrency}`;
  return [
    workload(
      'foreach_throughput',
      f.fanoutStepsPerSecond,
      'steps/s',
      'sequential chain, same service process',
      f.chain.stepsPerSecond,
      `>= ${FOREACH_TARGET_RATIO}`,
      {
        note: `${scale}: ${f.fanoutSeconds.toFixed(1)} s${f.reduced ? ` (reduced from ${f.requestedItems}: ${f.reduced})` : ''}; chain ${f.chain.executions} executions of 10 steps`,
        items: f.items,
        requested_items: f.requestedItems,
        seconds: round(f.fanoutSeconds, 2),
        chain: roundAll(f.chain),
      },
    ),
    workload(
      'foreach_rss_after',
      f.rss.afterMiB,
      'MiB RSS',
      'RSS before the fan-out (full GC)',
      f.rss.beforeMiB,
      '<= 1.2',
      {
        note: `full GC before and after ${scale}; heap ${f.rss.heapBeforeMiB.toFixed(1)} -> ${f.rss.heapAfterMiB.toFixed(1)} MiB`,
        ...roundAll(f.rss),
      },
    ),
    workload(
      'foreach_rss_peak',
      f.rss.peakMiB,
      'MiB RSS',
      'RSS before the fan-out (full GC)',
      f.rss.beforeMiB,
      null,
      { note: `VmRSS every second while it ran, no GC (${f.rss.samples} samples)` },
    ),
  ];
}

/** The other executions and the API while the fan-out runs. */
function meanwhileRows(f: ForeachFigures): Workload[] {
  const probes = (p: ProbeLatencies) =>
    `${p.samples} (${p.unfinished} unfinished, ${p.failed} failed)`;
  const probeNote = `3-step noop chains, one every ${f.probeIntervalMs / 1000} s: ${probes(f.probesDuring)} during the fan-out, ${probes(f.probesBefore)} before; created -> completed`;
  const viewAt = `${f.view.duringFanout ? 'during the fan-out' : 'after the fan-out (it ended before half)'}, ${f.view.itemsDone} of ${f.items} items done`;
  return [
    workload(
      'foreach_other_executions_p50',
      f.probesDuring.medianMs,
      'ms',
      'the same before the fan-out',
      f.probesBefore.medianMs,
      null,
      {
        note: probeNote,
        during: roundAll(f.probesDuring),
        before: roundAll(f.probesBefore),
      },
    ),
    workload(
      'foreach_other_executions_max',
      f.probesDuring.maxMs,
      'ms',
      'the same before the fan-out',
      f.probesBefore.maxMs,
      null,
      { note: 'unfinished ones count with their time so far (a lower bound)' },
    ),
    getRow('foreach_get_execution', '', f.view.execution, f.view.smallExecution, {
      note: `${viewAt}; polls every second: median ${f.polls.medianMs.toFixed(1)} ms, max ${f.polls.maxMs.toFixed(1)} ms`,
      polls: roundAll(f.polls),
    }),
    getRow('foreach_get_steps_page', '/steps?limit=100', f.view.steps, f.view.smallSteps, {
      note: viewAt,
    }),
  ];
}

/** A GET on the fan-out's execution against the same GET on a 3-step one. */
function getRow(
  name: string,
  suffix: string,
  fanout: CallFigures,
  small: CallFigures,
  details: { note: string } & Record<string, unknown>,
): Workload {
  const call = (c: CallFigures) => ({ ms: round(c.ms, 2), bytes: c.bytes });
  return workload(
    name,
    fanout.ms,
    'ms',
    `GET /executions/{id}${suffix} of a 3-step execution`,
    small.ms,
    null,
    {
      ...details,
      note: `${fanout.bytes} bytes (3-step: ${small.bytes}), ${details.note}`,
      fanout: call(fanout),
      small: call(small),
    },
  );
}

/** The `foreach` object of the JSON results: every figure, or why it was skipped. */
export function foreachSection(result: ForeachResult): Record<string, unknown> {
  return roundAll(result);
}
