import type { ExecutionRow, StepJob, StepRunRow } from '../../domain/execution.js';

/**
 * What a committed state change asks the outside world to do. State changes are computed in
 * a Postgres transaction; effects are applied only after it commits, so a crash in between
 * loses nothing the recovery sweep cannot redo from Postgres.
 */
export interface Effects {
  /** Step attempts (or wake-ups) to put on the queue. */
  jobs: StepJob[];
  /** New executions whose first scheduling decisions (conditions, for_each) a worker takes:
   * the start that made them runs no expression (see start.ts). */
  advanceExecutions: string[];
  /** Advance jobs due later: a debounced execution's admission when its window closes. */
  timedAdvances: Array<{ executionId: string; runAt: Date }>;
  /** Executions whose running attempts must be aborted (cancelled, failed, timed out). */
  abortExecutions: string[];
  /** Workflows whose cached view (counters) changed. */
  changedWorkflows: string[];
  /** Sub-workflow executions that ended: the runs waiting for them resume. */
  endedChildren: string[];
  /** Executions that ended without completing: their unfinished sub-workflows are cancelled. */
  stoppedParents: string[];
  /** Executions that ended, however: their execution span is sent (README "Tracing"). */
  endedExecutions: string[];
}

export function noEffects(): Effects {
  return {
    jobs: [],
    advanceExecutions: [],
    timedAdvances: [],
    abortExecutions: [],
    changedWorkflows: [],
    endedChildren: [],
    stoppedParents: [],
    endedExecutions: [],
  };
}

export function mergeEffects(target: Effects, source: Effects): Effects {
  target.jobs.push(...source.jobs);
  target.advanceExecutions.push(...source.advanceExecutions);
  target.timedAdvances.push(...source.timedAdvances);
  target.abortExecutions.push(...source.abortExecutions);
  target.changedWorkflows.push(...source.changedWorkflows);
  target.endedChildren.push(...source.endedChildren);
  target.stoppedParents.push(...source.stoppedParents);
  target.endedExecutions.push(...source.endedExecutions);
  return target;
}

/** Implemented by the engine (BullMQ, Redis pub/sub, cache); core only describes effects. */
export interface EffectSink {
  apply(effects: Effects): Promise<void>;
}

/** Follow-up work between executions (sub-workflows), done after the commit that caused it. */
export interface ExecutionLinks {
  /** Resumes the run that waits for this ended sub-workflow execution. */
  childEnded(childExecutionId: string): Promise<Effects>;
  /** Cancels the unfinished sub-workflow executions of an execution that ended. */
  cancelChildren(parentExecutionId: string): Promise<Effects>;
}

/** What a job needs of its execution. */
export type JobExecution = Pick<
  ExecutionRow,
  'id' | 'workflow_id' | 'workflow_version' | 'priority' | 'concurrency_key'
>;

/** The execution of a run read with its execution's columns (a claim, a sweep's or a
 * hand-off's row), as jobFor takes it. */
export function executionOfRun(
  run: Pick<StepRunRow, 'execution_id'> &
    Pick<ExecutionRow, 'workflow_id' | 'workflow_version' | 'priority' | 'concurrency_key'>,
): JobExecution {
  return {
    id: run.execution_id,
    workflow_id: run.workflow_id,
    workflow_version: run.workflow_version,
    priority: run.priority,
    concurrency_key: run.concurrency_key,
  };
}

/**
 * The fairness group of an execution's jobs: its workflow, and within it the execution's flow
 * key (config.concurrency.key or config.fairness_key) when it has one.
 */
export function fairnessGroup(execution: Pick<ExecutionRow, 'workflow_id' | 'concurrency_key'>) {
  const key = execution.concurrency_key;
  return key === null ? execution.workflow_id : `${execution.workflow_id}/${key}`;
}

/** The job that runs one attempt of a run of an execution. */
export function jobFor(
  execution: JobExecution,
  runId: number,
  stepId: string,
  attempt: number,
): StepJob {
  return {
    runId,
    attempt,
    stepId,
    executionId: execution.id,
    workflowId: execution.workflow_id,
    workflowVersion: execution.workflow_version,
    priority: execution.priority,
    group: fairnessGroup(execution),
  };
}

/**
 * The job of a run queued again after its limits turned it away (`turns` times): an id of its
 * own, since the job that ran the claim may still be in the queue, yet the same id whoever
 * adds it again (the sweep, a resume), so BullMQ keeps one.
 */
export function jobOfRun(
  execution: JobExecution,
  run: Pick<StepRunRow, 'id' | 'step_id' | 'attempt' | 'limit_wait'>,
): StepJob {
  const turn = turnOf(run);
  return { ...jobFor(execution, run.id, run.step_id, run.attempt), ...(turn ? { turn } : {}) };
}

/** How often the run's current attempt was turned away by its limits (0: never). */
export function turnOf(run: Pick<StepRunRow, 'attempt' | 'limit_wait'>): number {
  const turns = run.limit_wait;
  return turns && turns.attempt === run.attempt ? turns.turns : 0;
}

/** Adds the jobs of the runs that were inserted queued. */
export function queueJobs(
  execution: ExecutionRow,
  runs: readonly StepRunRow[],
  effects: Effects,
): Effects {
  for (const run of runs) {
    if (run.status === 'queued') {
      effects.jobs.push(jobFor(execution, run.id, run.step_id, run.attempt));
    }
  }
  return effects;
}
