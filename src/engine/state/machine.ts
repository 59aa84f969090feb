import type { ClaimedRun, StepErrorRecord } from '../../domain/execution.js';
import type { StepDefinition, WorkflowDefinition } from '../../domain/workflow-definition.js';
import { remember } from '../../lib/bounded-cache.js';
import type { Log } from '../../logger.js';
import type { Pool, Queryable } from '../../store/db.js';
import * as executions from '../../store/executions.js';
import type { WaitRequest } from '../steps/types.js';

/** Workflow versions (definitions) and workflows (current versions) kept per process. */
const CACHE_SIZE = 500;

export interface StateManagerOptions {
  pool: Pool;
  expressionTimeoutMs: number;
  /** Items one for_each may fan out to (MAX_FOR_EACH_ITEMS); default 100,000. */
  maxForEachItems?: number;
  /** How far back a run that starts waiting for an event looks for one it just missed. */
  eventBufferMs: number;
  /** Claims in a row that find an attempt abandoned by its process before the run fails as
   * `crashed` (MAX_CRASHED_CLAIMS; default DEFAULT_MAX_CRASHED_CLAIMS). */
  maxCrashedClaims?: number;
  /** Sub-workflow levels below a top-level execution (MAX_SUBWORKFLOW_DEPTH; default
   * DEFAULT_MAX_SUBWORKFLOW_DEPTH). */
  maxSubworkflowDepth?: number;
  logger: Log;
}

/**
 * What every part of the state machine shares: its options and the per-process caches.
 * The parts (start, advance, record-attempt, waits, operator-actions) are functions of it.
 */
export class Machine {
  private readonly definitions = new Map<string, WorkflowDefinition>();
  /** The version this process last saw current, per workflow: what startAtOnce tries. */
  private readonly heads = new Map<string, number>();

  constructor(readonly options: StateManagerOptions) {}

  /** The pinned definition of a workflow version; versions never change, so caching is safe. */
  async definition(
    db: Queryable,
    workflowId: string,
    version: number,
  ): Promise<WorkflowDefinition> {
    const key = `${workflowId}@${version}`;
    const cached = this.definitions.get(key);
    if (cached) return cached;
    const definition = await executions.loadDefinition(db, workflowId, version);
    if (!definition) throw new Error(`workflow version ${key} is missing`);
    remember(this.definitions, key, definition, CACHE_SIZE);
    return definition;
  }

  /** The workflow's current version as this process last saw it, if it saw one. */
  head(workflowId: string): number | undefined {
    return this.heads.get(workflowId);
  }

  sawHead(workflowId: string, version: number): void {
    remember(this.heads, workflowId, version, CACHE_SIZE);
  }
}

/** What the engine learned from one attempt of a step. */
export type AttemptResult =
  | { kind: 'completed'; output: unknown }
  | { kind: 'sleep'; until: Date; output?: unknown }
  | { kind: 'wait'; reason: string; wait: WaitRequest }
  | { kind: 'failed'; error: StepErrorRecord; retryAfterMs?: number | undefined };

/** How a recorded result proves it is for the current attempt. */
export type AttemptFence = { leaseId: string } | { attempt: number };

/**
 * A worker's offer to run, right after its record commits, one step that the record makes
 * ready: the state machine claims that run in the same transaction instead of queueing it, so
 * a chain of quick steps costs one transaction per step and no job. At most one run is taken
 * (the others are queued as usual, for every worker to share).
 */
export interface InlineSlot {
  leaseId: string;
  /** Whether this worker runs that step in process (quick, built-in step types). */
  accepts(step: StepDefinition): boolean;
  /** Set when a run was claimed for the worker; its transaction has committed once
   * recordAttempt returns. */
  claimed?: ClaimedRun;
}

/** What the worker that ran an attempt knows about it, beyond the fence. */
export interface AttemptReport {
  /** The run as claimed, with its iteration as the worker last saw it. */
  claim: ClaimedRun;
  /** When the handler started: the record of an attempt claimed inline sets its start. */
  startedAt: Date;
  inline?: InlineSlot | undefined;
}
