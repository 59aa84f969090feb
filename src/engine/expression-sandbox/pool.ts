import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { ExpressionLimitError, SandboxFailure } from './errors.js';

/**
 * The expression sandbox (README "Expressions"; docs/ARCHITECTURE.md "Workflows and
 * expressions"): expressions that can be expensive run in a pool of worker threads, where a
 * breach of time or memory costs one thread, not the event loop (for the one allocation V8
 * still answers by aborting the process, see worker.mjs).
 */
export interface SandboxLimits {
  /** Old-generation heap of each thread (EXPRESSION_MEMORY_MB). */
  memoryMb: number;
  /** Largest JSON result, in bytes (EXPRESSION_MAX_OUTPUT_BYTES). */
  maxOutputBytes: number;
}

export interface SandboxEvaluateOptions {
  timeoutMs: number;
  /** Variables visible as `$name`; functions (`$secret`) run in this thread, called by message. */
  bindings?: Record<string, unknown>;
}

export interface SandboxStats {
  /** Evaluations sent to the pool since the process started. */
  evaluations: number;
  /** Evaluations that ended in an ExpressionLimitError. */
  limitBreaches: number;
  /** Threads alive now (0 before the first evaluation and after close). */
  threads: number;
}

const DEFAULT_LIMITS: SandboxLimits = { memoryMb: 64, maxOutputBytes: 1024 * 1024 };
/** Deep jsonata recursion is async (heap, not stack), so a small stack is enough. */
const STACK_MB = 4;
const IDLE_TIMEOUT_MS = 30_000;
/**
 * The soft guard in the worker stops loops at timeoutMs with jsonata's D1012, as in process;
 * the thread is terminated only when a single native step (a regex, a huge range or string)
 * keeps it busy past twice the limit, and at least this much past it.
 */
const MIN_HARD_GRACE_MS = 1000;
const BYTES_PER_MB = 1024 * 1024;
/**
 * Budget per item of a range, or per character of $pad (built on an array of its width): an
 * 8-byte slot, twice over for the copy made as the array grows.
 */
const BYTES_PER_ITEM = 16;
const WORKER_URL = new URL('./worker.mjs', import.meta.url);

interface WorkerTask {
  source: string;
  context: unknown;
  bindings: Record<string, unknown>;
  functions: string[];
  port: MessagePort;
  timeoutMs: number;
  maxOutputBytes: number;
  maxItems: number;
}

type WorkerOutcome =
  | { json: string | undefined }
  | { failure: { message: string; code?: string; position?: number } }
  | { limit: 'output' | 'memory' };

type WorkerMessage =
  | { type: 'started' }
  | { type: 'call'; id: number; name: string; args: unknown[] };

let limits: SandboxLimits = DEFAULT_LIMITS;
let pool: Piscina<WorkerTask, WorkerOutcome> | undefined;
const counters = { evaluations: 0, limitBreaches: 0 };

/** Sets the limits of threads created from now on (server start, from config). */
export function configureExpressionSandbox(next: Partial<SandboxLimits>): void {
  limits = { ...limits, ...next };
}

function currentPool(): Piscina<WorkerTask, WorkerOutcome> {
  pool ??= new Piscina<WorkerTask, WorkerOutcome>({
    filename: WORKER_URL.href,
    minThreads: 0,
    maxThreads: Math.max(2, availableParallelism()),
    idleTimeout: IDLE_TIMEOUT_MS,
    resourceLimits: {
      maxOldGenerationSizeMb: limits.memoryMb,
      maxYoungGenerationSizeMb: Math.max(4, Math.ceil(limits.memoryMb / 8)),
      stackSizeMb: STACK_MB,
    },
    // Nothing from the environment: `$secret()` is answered by this thread (see callBinding).
    env: {},
  });
  return pool;
}

/** Counters for tests and metrics. */
export function sandboxStats(): SandboxStats {
  return { ...counters, threads: pool?.threads.length ?? 0 };
}

/** Terminates the pool's threads; the next evaluation creates a new pool. */
export async function closeExpressionSandbox(): Promise<void> {
  const closing = pool;
  pool = undefined;
  await closing?.destroy();
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

/** Runs a function binding for the worker; only its result (e.g. one secret) is sent back. */
async function callBinding(
  port: MessagePort,
  functions: Map<string, (...args: unknown[]) => unknown>,
  call: { id: number; name: string; args: unknown[] },
): Promise<void> {
  try {
    const fn = functions.get(call.name);
    if (!fn) throw new Error(`$${call.name} is not a function`);
    port.postMessage({ id: call.id, value: await fn(...call.args) });
  } catch (error) {
    port.postMessage({
      id: call.id,
      error: error instanceof Error ? error.message : String(error),
    });
  }
}

function memoryLimitError(source: string, cause?: unknown): ExpressionLimitError {
  return new ExpressionLimitError(
    `Expression exceeded its memory limit of ${limits.memoryMb} MB (EXPRESSION_MEMORY_MB)`,
    { source, limit: 'memory', ...(cause === undefined ? {} : { cause }) },
  );
}

function limitError(source: string, error: unknown, timedOutAfter: number | undefined): Error {
  if (timedOutAfter !== undefined) {
    return new ExpressionLimitError(
      `Expression exceeded its time limit (EXPRESSION_TIMEOUT_MS) and was stopped after ${timedOutAfter} ms; check for a backtracking regex or a huge string`,
      { source, limit: 'time', cause: error },
    );
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return memoryLimitError(source, error);
  if (pool === undefined) return new Error('The expression sandbox is closed', { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new ExpressionLimitError(`Expression evaluation thread died: ${message}`, {
    source,
    limit: 'thread',
    cause: error,
  });
}

/**
 * Evaluates `source` in a worker thread. Resolves to the JSON result (undefined for no match);
 * rejects with ExpressionLimitError on a breach, SandboxFailure for an ordinary failure.
 */
export async function evaluate(
  source: string,
  context: unknown,
  options: SandboxEvaluateOptions,
): Promise<unknown> {
  counters.evaluations++;
  const { values, functions } = splitBindings(options.bindings);
  const { port1, port2 } = new MessageChannel();
  const controller = new AbortController();
  const hardLimitMs = options.timeoutMs + Math.max(MIN_HARD_GRACE_MS, options.timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  let timedOutAfter: number | undefined;
  port1.on('message', (message: WorkerMessage) => {
    if (message.type === 'started') {
      timer = setTimeout(() => {
        timedOutAfter = hardLimitMs;
        controller.abort();
      }, hardLimitMs);
    } else {
      void callBinding(port1, functions, message);
    }
  });
  const { maxOutputBytes } = limits;
  let outcome: WorkerOutcome;
  try {
    outcome = await currentPool().run(
      {
        source,
        context,
        bindings: values,
        functions: [...functions.keys()],
        port: port2,
        timeoutMs: options.timeoutMs,
        maxOutputBytes,
        maxItems: (limits.memoryMb * BYTES_PER_MB) / BYTES_PER_ITEM,
      },
      { transferList: [port2], signal: controller.signal },
    );
  } catch (error) {
    const mapped = limitError(source, error, timedOutAfter);
    if (mapped instanceof ExpressionLimitError) counters.limitBreaches++;
    throw mapped;
  } finally {
    clearTimeout(timer);
    port1.close();
  }
  if ('limit' in outcome) {
    counters.limitBreaches++;
    if (outcome.limit === 'memory') throw memoryLimitError(source);
    throw new ExpressionLimitError(
      `Expression result exceeds the output limit of ${maxOutputBytes} bytes (EXPRESSION_MAX_OUTPUT_BYTES)`,
      { source, limit: 'output' },
    );
  }
  if ('failure' in outcome) throw new SandboxFailure(outcome.failure);
  return outcome.json === undefined ? undefined : JSON.parse(outcome.json);
}
