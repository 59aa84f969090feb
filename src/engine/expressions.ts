import jsonata from 'jsonata';
import {
  EXPRESSION_LIMIT_CODE,
  ExpressionLimitError,
  evaluate,
  needsSandbox,
} from './expression-sandbox/index.js';
import type { ExpressionContext } from './steps/types.js';

/**
 * JSONata helpers shared by the workflow validator and the engine (docs/ARCHITECTURE.md,
 * "Workflows and expressions"): compile with a bounded cache and evaluate under a time and depth limit.
 * The `{% ... %}` templates of step config are resolved in templates.ts.
 */

export interface EvaluateOptions {
  timeoutMs: number;
  /** Extra variables, visible to the expression as `$name`. */
  bindings?: Record<string, unknown>;
}

/** An expression that does not parse, fails, or exceeds its time or depth limit. */
export class ExpressionError extends Error {
  readonly source: string;
  /** Character offset jsonata reports for the problem, when it gives one. */
  readonly position: number | undefined;
  /** jsonata's error code (`S0201`, `T2002`, `D1012` for a timeout, ...). */
  readonly code: string | undefined;
  /** JSON path of the config field holding the expression, for template errors. */
  readonly path: string | undefined;

  constructor(
    message: string,
    options: { source: string; position?: number; code?: string; path?: string; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ExpressionError';
    this.source = options.source;
    this.position = options.position;
    this.code = options.code;
    this.path = options.path;
  }
}

const CACHE_LIMIT = 1000;
/**
 * Nesting of evaluation frames allowed. Legitimate recursion a few hundred calls deep still
 * fits; a non-terminating recursive function hits it long before memory becomes a problem.
 */
const MAX_DEPTH = 2000;

/*
 * The guard hooks are installed once per compiled expression, but their state must belong to
 * one evaluation: a cached expression can be evaluated by interleaved async calls. Each
 * evaluation binds its own guard under this name in its execution frame, which every nested
 * frame reaches through `base`. The space makes it a name no JSONata `$variable` can spell,
 * so an expression can neither read nor rebind it.
 */
const GUARD_BINDING = 'workflow evaluation guard';
const ENTRY_HOOK = Symbol.for('jsonata.__evaluate_entry');
const EXIT_HOOK = Symbol.for('jsonata.__evaluate_exit');

/** The part of jsonata's internal frame the hooks rely on (not in its type definitions). */
interface JsonataFrame {
  base?: JsonataFrame;
  lookup(name: string | symbol): unknown;
}

/** jsonata throws plain objects, not Error instances. */
interface JsonataFailure {
  code?: string;
  message?: string;
  position?: number;
  token?: string;
  error?: unknown;
}

/**
 * Thrown inside jsonata when a guard trips. It carries no `code` on purpose: jsonata rewrites
 * the message of any error whose code it knows, so the real error is kept on the guard.
 */
class GuardTripped extends Error {}

class EvaluationGuard {
  depth = 0;
  tripped: ExpressionError | undefined;
  private readonly deadline: number;

  constructor(
    private readonly source: string,
    private readonly timeoutMs: number,
  ) {
    this.deadline = Date.now() + timeoutMs;
  }

  check(): void {
    if (this.tripped) throw new GuardTripped(this.tripped.message);
    if (this.depth > MAX_DEPTH) {
      this.trip(
        `Expression exceeded the maximum evaluation depth of ${MAX_DEPTH}; check for a non-terminating recursive function`,
        'D1011',
      );
    }
    if (Date.now() > this.deadline) {
      this.trip(
        `Expression exceeded its time limit of ${this.timeoutMs} ms; check for an infinite loop`,
        'D1012',
      );
    }
  }

  private trip(message: string, code: string): never {
    this.tripped = new ExpressionError(message, { source: this.source, code });
    throw new GuardTripped(message);
  }
}

function guardOf(environment: JsonataFrame): EvaluationGuard | undefined {
  const guard = environment.base?.lookup(GUARD_BINDING);
  return guard instanceof EvaluationGuard ? guard : undefined;
}

function onEvaluateEntry(_node: unknown, _input: unknown, environment: JsonataFrame): void {
  const guard = guardOf(environment);
  if (!guard) return;
  guard.depth++;
  guard.check();
}

function onEvaluateExit(_node: unknown, _input: unknown, environment: JsonataFrame): void {
  const guard = guardOf(environment);
  if (!guard) return;
  guard.depth--;
  guard.check();
}

const cache = new Map<string, jsonata.Expression>();

function asFailure(error: unknown): JsonataFailure {
  return typeof error === 'object' && error !== null ? (error as JsonataFailure) : {};
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  const message = asFailure(error).message;
  return typeof message === 'string' && message.length > 0 ? message : String(error);
}

/** Compiles JSONata source, reusing a cached compilation; throws ExpressionError on bad syntax. */
export function compileExpression(source: string): jsonata.Expression {
  const cached = cache.get(source);
  if (cached) {
    // Re-insert so the Map's insertion order doubles as least-recently-used order.
    cache.delete(source);
    cache.set(source, cached);
    return cached;
  }
  let compiled: jsonata.Expression;
  try {
    compiled = jsonata(source);
  } catch (error) {
    const failure = asFailure(error);
    const at = typeof failure.position === 'number' ? ` at position ${failure.position}` : '';
    throw new ExpressionError(`Invalid expression${at}: ${messageOf(error)}`, {
      source,
      ...(typeof failure.position === 'number' ? { position: failure.position } : {}),
      ...(typeof failure.code === 'string' ? { code: failure.code } : {}),
      cause: error,
    });
  }
  // jsonata's typings only admit string names, but its hooks are looked up by symbol.
  const assign = compiled.assign as (name: string | symbol, value: unknown) => void;
  assign(ENTRY_HOOK, onEvaluateEntry);
  assign(EXIT_HOOK, onEvaluateExit);
  cache.set(source, compiled);
  if (cache.size > CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  return compiled;
}

/** Returns a human-readable reason when `source` does not parse, else null. */
export function checkExpression(source: string): string | null {
  try {
    compileExpression(source);
    return null;
  } catch (error) {
    return messageOf(error);
  }
}

function isJsonataFunction(value: object): boolean {
  return '_jsonata_lambda' in value || '_jsonata_function' in value;
}

/**
 * Turns a jsonata result into plain JSON: drops the `sequence` markers jsonata puts on
 * arrays and any function values, so the result can be stored as JSONB.
 */
function toJson(value: unknown, source: string): unknown {
  if (value === undefined) return undefined;
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_key, item: unknown) =>
      typeof item === 'function' ||
      (typeof item === 'object' && item !== null && isJsonataFunction(item))
        ? undefined
        : item,
    );
  } catch (error) {
    throw new ExpressionError(`Expression result is not a JSON value: ${messageOf(error)}`, {
      source,
      cause: error,
    });
  }
  return text === undefined ? undefined : JSON.parse(text);
}

async function evaluateRaw(
  source: string,
  context: ExpressionContext,
  options: EvaluateOptions,
): Promise<unknown> {
  const compiled = compileExpression(source);
  const guard = new EvaluationGuard(source, options.timeoutMs);
  try {
    // Expressions that can be expensive run in child processes with hard limits (expression-sandbox).
    if (needsSandbox(source)) return await evaluate(source, context, options);
    return await compiled.evaluate(context, { ...options.bindings, [GUARD_BINDING]: guard });
  } catch (error) {
    // The guard's error may arrive wrapped (e.g. by $eval), so trust the guard's own record.
    if (guard.tripped) throw guard.tripped;
    if (error instanceof ExpressionError || error instanceof ExpressionLimitError) throw error;
    const failure = asFailure(error);
    throw new ExpressionError(messageOf(error), {
      source,
      ...(typeof failure.position === 'number' ? { position: failure.position } : {}),
      ...(typeof failure.code === 'string' ? { code: failure.code } : {}),
      cause: error,
    });
  }
}

/**
 * Evaluates JSONata source against the execution context under a time and depth limit.
 * Resolves to plain JSON, or undefined when nothing matched.
 */
export async function evaluateExpression(
  source: string,
  context: ExpressionContext,
  options: EvaluateOptions,
): Promise<unknown> {
  return toJson(await evaluateRaw(source, context, options), source);
}

/**
 * The step error type for an expression failure: `expression_limit` when the sandbox stopped
 * it at a hard limit (time, memory, output), else `expression_error`. Neither is retryable.
 */
export function expressionFailureType(error: unknown): 'expression_limit' | 'expression_error' {
  return error instanceof ExpressionLimitError ? EXPRESSION_LIMIT_CODE : 'expression_error';
}

/** JSONata's `$boolean` cast, with undefined (no match) as false. */
function truthy(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.some((item) => truthy(item));
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'string':
      return value.length > 0;
    case 'number':
      return value !== 0;
    case 'object':
      return !isJsonataFunction(value) && Object.keys(value).length > 0;
    default:
      return false;
  }
}

/** Evaluates a condition with JSONata truthiness (`$boolean`); no match counts as false. */
export async function evaluateCondition(
  source: string,
  context: ExpressionContext,
  options: EvaluateOptions,
): Promise<boolean> {
  return truthy(await evaluateRaw(source, context, options));
}

// Kept here too, where callers found them before secrets had a file of their own.
export { redactSecrets, SECRET_ENV_PREFIX } from './secrets.js';
