import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import workerpool from 'workerpool';
import { ExpressionLimitError, SandboxFailure } from './errors.js';

/**
 * The expression sandbox (README "Expressions"; docs/ARCHITECTURE.md "Workflows and
 * expressions"): expressions that can be expensive run in a pool of child processes, where a
 * breach of time or memory costs one child, never the service process. A worker thread was not
 * enough: V8 answers one allocation far past a thread's heap limit by aborting the process.
 */
export interface SandboxLimits {
  /** Old-generation heap of each child process (EXPRESSION_MEMORY_MB). */
  memoryMb: number;
  /** Largest JSON result, in bytes (EXPRESSION_MAX_OUTPUT_BYTES). */
  maxOutputBytes: number;
}

export interface SandboxEvaluateOptions {
  timeoutMs: number;
  /** Variables visible as `$name`; functions (`$secret`) run in this process, called by message. */
  bindings?: Record<string, unknown>;
}

export interface SandboxStats {
  /** Evaluations sent to the pool since the process started. */
  evaluations: number;
  /** Evaluations that ended in an ExpressionLimitError. */
  limitBreaches: number;
  /** Child processes alive now (0 before the first evaluation and after close). */
  threads: number;
}

const DEFAULT_LIMITS: SandboxLimits = { memoryMb: 64, maxOutputBytes: 1024 * 1024 };
/** Deep jsonata recursion is async (heap, not stack), so a bounded native stack (KB) is enough. */
const STACK_KB = 512;
/**
 * The soft guard in the child stops loops at timeoutMs with jsonata's D1012, as in process;
 * the child is killed only when a single native step (a regex, a huge range or string) keeps
 * it busy past twice the limit, and at least this much past it.
 */
const MIN_HARD_GRACE_MS = 1000;
/** How long a killed child gets to answer workerpool's cleanup request before SIGTERM. */
const TERMINATE_TIMEOUT_MS = 100;
const BYTES_PER_MB = 1024 * 1024;
/**
 * Budget per item of a range, or per character of $pad (built on an array of its width): an
 * 8-byte slot, twice over for the copy made as the array grows.
 */
const BYTES_PER_ITEM = 16;
const WORKER_PATH = fileURLToPath(new URL('./worker.mjs', import.meta.url));
/**
 * The child's whole environment: nothing of the service's (DATABASE_URL, JWT_SECRET,
 * WF_SECRET_*); `$secret()` is answered by this process (see callBinding).
 */
const CHILD_ENV: NodeJS.ProcessEnv = { NODE_ENV: 'production' };

interface WorkerTask {
  source: string;
  context: unknown;
  bindings: Record<string, unknown>;
  functions: string[];
  timeoutMs: number;
  maxOutputBytes: number;
  maxItems: number;
}

type WorkerOutcome =
  | { json: string | undefined }
  | { failure: { message: string; code?: string; position?: number } }
  | { limit: 'output' | 'memory' };

type WorkerEvent =
  | { type: 'started'; pid: number }
  | { type: 'call'; id: number; name: string; args: unknown[] }
  | { stderr: string }
  | { stdout: string };

type Pool = ReturnType<typeof workerpool.pool>;

let limits: SandboxLimits = DEFAULT_LIMITS;
let pool: Pool | undefined;
const counters = { evaluations: 0, limitBreaches: 0 };

/** Sets the limits of child processes created from now on (server start, from config). */
export function configureExpressionSandbox(next: Partial<SandboxLimits>): void {
  limits = { ...limits, ...next };
}

function currentPool(): Pool {
  pool ??= workerpool.pool(WORKER_PATH, {
    workerType: 'process',
    minWorkers: 0,
    maxWorkers: Math.max(2, availableParallelism()),
    workerTerminateTimeout: TERMINATE_TIMEOUT_MS,
    // Piped, so a child's dying words (V8's out-of-memory report) reach the task, not our stderr.
    emitStdStreams: true,
    forkOpts: {
      execArgv: [`--max-old-space-size=${limits.memoryMb}`, `--stack-size=${STACK_KB}`],
      env: CHILD_ENV,
    },
  });
  return pool;
}

/** Counters for tests and metrics. */
export function sandboxStats(): SandboxStats {
  return { ...counters, threads: pool?.stats().totalWorkers ?? 0 };
}

/** Kills the pool's child processes; the next evaluation creates a new pool. */
export async function closeExpressionSandbox(): Promise<void> {
  const closing = pool;
  pool = undefined;
  await closing?.terminate(true);
}

/**
 * The child process running a task, found by the pid it announced. workerpool keeps its
 * handlers private; answering a function call needs the child's IPC channel, which only the
 * handler holds (pinned workerpool version; the unit tests cover `$secret` through it).
 */
function childOf(current: Pool, pid: number): ChildProcess | undefined {
  const handlers = (current as unknown as { workers: Array<{ worker: ChildProcess }> }).workers;
  return handlers.find((handler) => handler.worker.pid === pid)?.worker;
}

/**
 * Hands queued tasks to a child after one died. workerpool (pinned 10.0.3) dispatches the next
 * queued task only once it has finished removing a dead child, and it never finishes for a child
 * that exited by itself (an out-of-memory abort): it waits for a second 'exit' event. Without
 * this, a task queued behind such deaths waits for ever (tests/unit/expression-sandbox.test.ts,
 * "keeps serving tasks queued behind children that died"). `_next` is what `exec` calls; it
 * is idempotent: it takes a queued task only when a child is free or may be created.
 */
function dispatchQueued(current: Pool): void {
  setImmediate(() => {
    if (pool === current) (current as unknown as { _next(): void })._next();
  });
}

function splitBindings(bindings: Record<string, unknown> | undefined): {
  values: Record<string, unknown>;
  functions: Map<string, (...args: unknown[]) => unknown>;
} {
  const values: Record<string, unknown> = {};
  const functions = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, value] of Object.entries(bindings ?? {})) {
    if (typeof value === 'function') functions.set(name, value as (...args: unknown[]) => unknown);
    else values[name] = value;
  }
  return { values, functions };
}

/** Runs a function binding for the child; only its result (e.g. one secret) is sent back. */
async function callBinding(
  child: ChildProcess | undefined,
  functions: Map<string, (...args: unknown[]) => unknown>,
  call: { id: number; name: string; args: unknown[] },
): Promise<void> {
  let answer: { wfAnswer: number; value?: unknown; error?: string };
  try {
    const fn = functions.get(call.name);
    if (!fn) throw new Error(`$${call.name} is not a function`);
    answer = { wfAnswer: call.id, value: await fn(...call.args) };
  } catch (error) {
    answer = { wfAnswer: call.id, error: error instanceof Error ? error.message : String(error) };
  }
  if (child?.connected) child.send(answer);
}

function memoryLimitError(source: string, cause?: unknown): ExpressionLimitError {
  return new ExpressionLimitError(
    `Expression exceeded its memory limit of ${limits.memoryMb} MB (EXPRESSION_MEMORY_MB)`,
    { source, limit: 'memory', ...(cause === undefined ? {} : { cause }) },
  );
}

/** What a child that died mid-task said on stderr, kept to classify its death. */
const OUT_OF_MEMORY = /heap out of memory|Reached heap limit|allocation failed/i;

function limitError(
  source: string,
  error: unknown,
  timedOutAfter: number | undefined,
  stderr: string,
): Error {
  if (timedOutAfter !== undefined) {
    return new ExpressionLimitError(
      `Expression exceeded its time limit (EXPRESSION_TIMEOUT_MS) and was stopped after ${timedOutAfter} ms; check for a backtracking regex or a huge string`,
      { source, limit: 'time', cause: error },
    );
  }
  if (pool === undefined) return new Error('The expression sandbox is closed', { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  // V8 aborts a child whose heap is full: it says so on stderr and dies of SIGABRT.
  if (OUT_OF_MEMORY.test(stderr) || message.includes('SIGABRT')) {
    return memoryLimitError(source, error);
  }
  return new ExpressionLimitError(`Expression evaluation process died: ${message.split('\n')[0]}`, {
    source,
    limit: 'thread',
    cause: error,
  });
}

function outcomeError(source: string, outcome: WorkerOutcome, maxOutputBytes: number): Error {
  if ('failure' in outcome) return new SandboxFailure(outcome.failure);
  counters.limitBreaches++;
  if ('limit' in outcome && outcome.limit === 'memory') return memoryLimitError(source);
  return new ExpressionLimitError(
    `Expression result exceeds the output limit of ${maxOutputBytes} bytes (EXPRESSION_MAX_OUTPUT_BYTES)`,
    { source, limit: 'output' },
  );
}

/**
 * Evaluates `source` in a child process. Resolves to the JSON result (undefined for no match);
 * rejects with ExpressionLimitError on a breach, SandboxFailure for an ordinary failure.
 */
export async function evaluate(
  source: string,
  context: unknown,
  options: SandboxEvaluateOptions,
): Promise<unknown> {
  counters.evaluations++;
  const { values, functions } = splitBindings(options.bindings);
  const hardLimitMs = options.timeoutMs + Math.max(MIN_HARD_GRACE_MS, options.timeoutMs);
  const current = currentPool();
  let child: ChildProcess | undefined;
  let stderr = '';
  const { maxOutputBytes } = limits;
  const task: WorkerTask = {
    source,
    context,
    bindings: values,
    functions: [...functions.keys()],
    timeoutMs: options.timeoutMs,
    maxOutputBytes,
    maxItems: (limits.memoryMb * BYTES_PER_MB) / BYTES_PER_ITEM,
  };
  const running = current.exec('evaluate', [task], {
    on: (event: WorkerEvent) => {
      if ('stderr' in event) stderr = `${stderr}${event.stderr}`.slice(-4096);
      else if ('stdout' in event) return;
      else if (event.type === 'started') {
        child = childOf(current, event.pid);
        // The hard clock starts with the evaluation, not with the queue or a new child's boot;
        // on expiry workerpool kills the child (verified in tests/unit/expression-sandbox.test.ts).
        running.timeout(hardLimitMs);
      } else void callBinding(child, functions, event);
    },
  });
  let outcome: WorkerOutcome;
  try {
    outcome = (await running) as WorkerOutcome;
  } catch (error) {
    dispatchQueued(current);
    const timedOut = error instanceof workerpool.Promise.TimeoutError ? hardLimitMs : undefined;
    const mapped = limitError(source, error, timedOut, stderr);
    if (mapped instanceof ExpressionLimitError) counters.limitBreaches++;
    throw mapped;
  }
  // IPC drops an undefined `json` (no match), so the two other kinds are tested for instead.
  if ('failure' in outcome || 'limit' in outcome)
    throw outcomeError(source, outcome, maxOutputBytes);
  return outcome.json === undefined ? undefined : JSON.parse(outcome.json);
}
