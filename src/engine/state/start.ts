import { randomBytes } from 'node:crypto';
import { DEFAULT_PRIORITY, type ExecutionRow, type StepRunRow } from '../../domain/execution.js';
import { triggeredLabels } from '../../domain/labels.js';
import type { ExecutionTraceContext } from '../../domain/trace-context.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import {
  DependencyUnavailableError,
  WorkflowNotFoundError,
  WorkflowNotRunnableError,
  WorkflowVersionNotFoundError,
} from '../../errors.js';
import { isPgError, type Queryable, SqlState, withTransactionThen } from '../../store/db.js';
import type { NewExecution } from '../../store/executions.js';
import * as executions from '../../store/executions.js';
import { admitKeyed, flowKey } from './admission.js';
import { type AdvanceOptions, advance } from './advance.js';
import { collectStart, openDebounceWindow } from './debounce.js';
import { type Effects, noEffects, queueJobs } from './effects.js';
import { firstIteration } from './iteration-runs.js';
import type { Machine } from './machine.js';

/**
 * How executions begin: the one way for the API, events, schedules and sub-workflows. The
 * one-statement path (startAtOnce) and the general path (start) share the idempotency lookup
 * (findStarted) and the insert (insertFirst); startAndAnswer is how the API combines them.
 */

/** What starts an execution. */
export interface StartRequest {
  workflowId: string;
  input: unknown;
  idempotencyKey: string | null;
  /** Event and schedule starts run only active workflows; the API runs drafts too. */
  activeOnly?: boolean;
  parent?: NewExecution['parent'];
  trigger?: Record<string, unknown>;
  /** 1 (first) to 10 (last); else the workflow's config.priority, else 5. */
  priority?: number | undefined;
  /** Business keys to search it by; a sub-workflow gets its parent's. */
  labels?: Record<string, string> | undefined;
  /** A stored version to run instead of the current one (README "Versions, upgrades and edits"). */
  version?: number | undefined;
  /** The execution's trace context, made by the caller when tracing is on (README "Tracing"). */
  traceContext?: ExecutionTraceContext | undefined;
}

export interface Started {
  row: ExecutionRow;
  created: boolean;
  /** A start of a workflow with config.debounce: it joined, or opened, a window. */
  debounced?: boolean;
  effects: Effects;
  /** For a new execution still running: its runs as the start left them. */
  settled?: { execution: ExecutionRow; runs: StepRunRow[] };
}

/** Starts that find the workflow changed under them read its head again, this often at most. */
const MAX_START_ATTEMPTS = 3;

function runnableStatuses(request: StartRequest): string[] {
  return request.activeOnly ? ['active'] : ['draft', 'active'];
}

function newExecution(
  request: StartRequest,
  version: number,
  definition: WorkflowDefinition,
): NewExecution {
  const timeout = definition.config.timeout_seconds;
  return {
    id: `ex_${randomBytes(12).toString('base64url')}`,
    workflowId: request.workflowId,
    version,
    input: request.input ?? {},
    idempotencyKey: request.idempotencyKey,
    timeoutSeconds: typeof timeout === 'number' ? timeout : null,
    parent: request.parent,
    trigger: request.trigger,
    priority: request.priority ?? definition.config.priority ?? DEFAULT_PRIORITY,
    queued: startsQueued(definition),
    labels:
      request.trigger?.type === 'schedule' || request.trigger?.type === 'event'
        ? triggeredLabels(definition.config.trigger?.labels, request.labels)
        : request.labels,
    traceContext: request.traceContext,
  };
}

/** The execution an earlier start with the same idempotency key made, if there is one. */
export async function findStarted(
  db: Queryable,
  request: Pick<StartRequest, 'workflowId' | 'idempotencyKey'>,
  effects: Effects = noEffects(),
): Promise<Started | null> {
  if (!request.idempotencyKey) return null;
  const existing = await executions.findByIdempotencyKey(
    db,
    request.workflowId,
    request.idempotencyKey,
  );
  return existing ? { row: existing, created: false, effects } : null;
}

/** Under config.concurrency or config.debounce, an execution starts queued until admitted
 * (admission.ts): at once when its key has a slot, else when one frees or its window ends. */
function startsQueued(definition: WorkflowDefinition): boolean {
  return definition.config.concurrency !== undefined || definition.config.debounce !== undefined;
}

/** A queued execution starts with none of its runs queued. */
function admitted(
  definition: WorkflowDefinition,
  first: ReturnType<typeof firstIteration>,
): ReturnType<typeof firstIteration> {
  return startsQueued(definition) ? { ...first, queued: [] } : first;
}

/**
 * Inserts the execution and its first iteration's runs, if `version` is still the current
 * one and runnable; null, with nothing written, when the workflow changed. Its flow key
 * (config.concurrency or config.fairness_key) is evaluated first, so that it is admitted, or
 * queued, in the same transaction, and its jobs join their fairness group at once; a debounced
 * start's key waits for its window's end.
 */
async function insertFirst(
  m: Machine,
  db: Queryable,
  request: StartRequest,
  version: number,
  definition: WorkflowDefinition,
  first: ReturnType<typeof firstIteration>,
) {
  const fresh = newExecution(request, version, definition);
  if (!definition.config.debounce) {
    const identity = { id: fresh.id, workflow_id: fresh.workflowId, workflow_version: version };
    const seen = { ...identity, input_data: fresh.input, labels: fresh.labels ?? {} };
    fresh.flowKey = await flowKey(m, definition, seen);
  }
  const expected = { runnable: runnableStatuses(request), pinned: request.version !== undefined };
  return executions.insertExecution(db, fresh, expected, first);
}

/**
 * Starts an execution of a workflow's current version inside the caller's transaction. With
 * an idempotency key already used, returns that execution instead (created: false). Only a
 * sub-workflow start (on a worker) takes the first pass's decisions here; other starts leave
 * them to an advance job (docs/ARCHITECTURE.md, "Life of a request").
 */
export async function start(
  m: Machine,
  tx: Queryable,
  request: StartRequest,
  effects: Effects = noEffects(),
  attemptsLeft = MAX_START_ATTEMPTS,
): Promise<Started> {
  const head = await executions.findWorkflowHead(tx, request.workflowId);
  if (!head) throw new WorkflowNotFoundError(request.workflowId);
  m.sawHead(request.workflowId, head.version);
  const earlier = await findStarted(tx, request, effects);
  if (earlier) return earlier;
  if (!runnableStatuses(request).includes(head.status)) {
    throw new WorkflowNotRunnableError(request.workflowId, head.status);
  }
  const version = request.version ?? head.version;
  if (
    version !== head.version &&
    !(await executions.loadDefinition(tx, request.workflowId, version))
  ) {
    throw new WorkflowVersionNotFoundError(request.workflowId, version);
  }
  const definition = await m.definition(tx, request.workflowId, version);
  let debounceKey: string | null = null;
  if (definition.config.debounce) {
    const collected = await collectStart(m, tx, request, version, definition, effects);
    if ('collected' in collected) {
      return { row: collected.collected, created: false, debounced: true, effects };
    }
    debounceKey = collected.key;
  }
  const first = admitted(definition, firstIteration(definition));
  const inserted = await insertFirst(m, tx, request, version, definition, first);
  if (!inserted) {
    // A concurrent start with the same key won the insert: return its execution.
    const concurrent = await findStarted(tx, request, effects);
    if (concurrent) return concurrent;
    // The workflow changed (a new version, another status) since its head was read.
    if (attemptsLeft <= 1) {
      throw new DependencyUnavailableError(`Workflow ${request.workflowId}, changing right now,`);
    }
    return start(m, tx, request, effects, attemptsLeft - 1);
  }
  queueJobs(inserted.row, inserted.runs, effects);
  if (debounceKey !== null) {
    const row = await openDebounceWindow(tx, inserted.row, definition, debounceKey, effects);
    return { row, created: true, debounced: true, effects };
  }
  const { concurrency } = definition.config;
  if (concurrency && inserted.row.concurrency_key !== null) {
    // Admitted (or queued, or cancelled by on_limit) at once; an admitted one's first pass is
    // an advance job's, as for any start.
    const row = await admitKeyed(m, tx, inserted.row, concurrency, effects);
    if (row.status === 'running') effects.advanceExecutions.push(row.id);
    return { row, created: true, effects };
  }
  if (inserted.row.status === 'queued' || (!first.settled && request.parent === undefined)) {
    // The first pass takes decisions (conditions, for_each, the output of an empty
    // workflow), and the admission of a queued execution evaluates its key: expressions, run
    // by a worker, never by the request or event that starts the execution. Its runs stay
    // pending until then; a lost job leaves the execution idle, and the recovery sweep's idle
    // passes advance or admit it.
    effects.advanceExecutions.push(inserted.row.id);
    const settled = { execution: inserted.row, runs: inserted.runs };
    return { row: inserted.row, created: true, effects, settled };
  }
  // A sub-workflow starts inside its parent's worker transaction: it advances in place.
  const known: AdvanceOptions = { runs: inserted.runs };
  await advance(m, tx, inserted.row, effects, known);
  return {
    row: known.settled?.execution ?? inserted.row,
    created: true,
    effects,
    settled: known.settled,
  };
}

/**
 * start in one statement, outside any transaction, when this process saw the workflow's
 * current version before and the scheduler's first pass only queues steps: the insert
 * checks that the version and a runnable status still hold. Null, with nothing written,
 * when that does not apply: the caller then uses start.
 */
export async function startAtOnce(
  m: Machine,
  db: Queryable,
  request: StartRequest,
): Promise<Started | null> {
  const version = m.head(request.workflowId);
  if (version === undefined || request.idempotencyKey || request.version !== undefined) return null;
  const definition = await m.definition(db, request.workflowId, version);
  const first = firstIteration(definition);
  if (!first.settled || startsQueued(definition)) return null;
  const inserted = await insertFirst(m, db, request, version, definition, first);
  if (!inserted) return null;
  const effects = queueJobs(inserted.row, inserted.runs, noEffects());
  const settled = { execution: inserted.row, runs: inserted.runs };
  return { row: inserted.row, created: true, effects, settled };
}

/**
 * The API's start: startAtOnce when it applies, else start in a transaction of its own.
 * `answer` reads the response: after COMMIT on the transaction's own connection, so once the
 * execution is committed the client gets its answer, not a pool timeout.
 */
export async function startAndAnswer<R>(
  m: Machine,
  request: StartRequest,
  answer: (db: Queryable, started: Started) => Promise<R>,
): Promise<{ started: Started; answer: R }> {
  const { pool } = m.options;
  const atOnce = await startAtOnce(m, pool, request);
  if (atOnce) return { started: atOnce, answer: await answer(pool, atOnce) };
  try {
    return await withTransactionThen(
      pool,
      (tx) => start(m, tx, request),
      async (client, started) => ({ started, answer: await answer(client, started) }),
    );
  } catch (error) {
    // Two concurrent first uses of a key: the loser's transaction aborts on the unique index.
    if (!isPgError(error, SqlState.UNIQUE_VIOLATION)) throw error;
    const existing = await findStarted(pool, request);
    if (!existing) throw error;
    return { started: existing, answer: await answer(pool, existing) };
  }
}
