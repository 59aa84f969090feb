import type { StepJob } from '../store/execution-store.js';

/**
 * What a committed state change asks the outside world to do. State changes are computed in
 * a Postgres transaction; effects are applied only after it commits, so a crash in between
 * loses nothing the recovery sweep cannot redo from Postgres.
 */
export interface Effects {
  /** Step attempts (or wake-ups) to put on the queue. */
  jobs: StepJob[];
  /** Executions whose running attempts must be aborted (cancelled, failed, timed out). */
  abortExecutions: string[];
  /** Workflows whose cached view (counters) changed. */
  changedWorkflows: string[];
}

export function noEffects(): Effects {
  return { jobs: [], abortExecutions: [], changedWorkflows: [] };
}

export function mergeEffects(target: Effects, source: Effects): Effects {
  target.jobs.push(...source.jobs);
  target.abortExecutions.push(...source.abortExecutions);
  target.changedWorkflows.push(...source.changedWorkflows);
  return target;
}

/** Implemented by the engine (BullMQ, Redis pub/sub, cache); core only describes effects. */
export interface EffectSink {
  apply(effects: Effects): Promise<void>;
}
