// Child-process entry of the expression sandbox (pool.ts). Plain JavaScript on purpose: the
// child is a bare `node` started by workerpool, not transformed by vitest or tsx, and the build
// copies this file next to pool.js, so one file loads the same way under tests, `tsx` and
// `node dist/...`. It imports only jsonata and workerpool (whose worker side is this process).
//
// The time and depth guard below mirrors EvaluationGuard in ../expressions.ts (same codes and
// messages, so a runaway loop reports exactly as it did in process). It is the soft limit: it
// trips between interpreter steps. A single native step that never ends (a backtracking regex)
// is stopped by the pool killing this process; memory by its --max-old-space-size, whose
// breach aborts this process only.

import jsonata from 'jsonata';
import workerpool from 'workerpool';

const CACHE_LIMIT = 1000;
const MAX_DEPTH = 2000;
const GUARD_BINDING = 'workflow evaluation guard';
const ENTRY_HOOK = Symbol.for('jsonata.__evaluate_entry');
const EXIT_HOOK = Symbol.for('jsonata.__evaluate_exit');
/** Bytes counted per JSON token (quotes, separators) on top of its text, when estimating. */
const TOKEN_OVERHEAD = 4;

class GuardTripped extends Error {}

class EvaluationGuard {
  depth = 0;
  /** @type {{ message: string, code: string } | undefined} */
  tripped = undefined;
  /** Set when a step was refused for the memory it would take (see maxItems). */
  allocationRefused = false;
  /** Left bound of each range being evaluated, by its operand node. */
  rangeStarts = new Map();

  constructor(timeoutMs) {
    this.timeoutMs = timeoutMs;
    this.deadline = Date.now() + timeoutMs;
  }

  check() {
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

  trip(message, code) {
    this.tripped = { message, code };
    throw new GuardTripped(message);
  }
}

function guardOf(environment) {
  const guard = environment.base?.lookup(GUARD_BINDING);
  return guard instanceof EvaluationGuard ? guard : undefined;
}

function onEvaluateEntry(_node, _input, environment) {
  const guard = guardOf(environment);
  if (!guard) return;
  guard.depth++;
  guard.check();
}

function onEvaluateExit(node, _input, environment, result) {
  const guard = guardOf(environment);
  if (!guard) return;
  guard.depth--;
  guard.check();
  if (rangeOperands.has(node)) checkRange(guard, node, result);
}

/**
 * Operand nodes of every range `[a..b]` of a compiled expression: left ones map to null,
 * right ones to their left. A range is refused once both bounds are known, before jsonata
 * builds its array (8 bytes a slot, copied as it grows) in one step.
 */
const rangeOperands = new WeakMap();

function collectRanges(node, depth = 0) {
  if (depth > 500 || typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const item of node) collectRanges(item, depth + 1);
    return;
  }
  if (node.type === 'binary' && node.value === '..') {
    rangeOperands.set(node.lhs, null);
    rangeOperands.set(node.rhs, node.lhs);
  }
  for (const [key, value] of Object.entries(node)) {
    if (key !== 'value') collectRanges(value, depth + 1);
  }
}

function checkRange(guard, node, result) {
  const lhs = rangeOperands.get(node);
  if (lhs === null) {
    guard.rangeStarts.set(node, result);
    return;
  }
  const start = guard.rangeStarts.get(lhs);
  if (typeof start === 'number' && typeof result === 'number' && result - start >= maxItems) {
    guard.allocationRefused = true;
    throw new AllocationTooLarge();
  }
}

const cache = new Map();

/** Thrown when one step would allocate more than this process's heap can hold. */
class AllocationTooLarge extends Error {}

/**
 * Any heap breach now aborts only this child process, which the pool replaces. `$pad` (one
 * huge string from a small input) and a range (one huge array from two numbers) are still
 * refused up front: the refusal costs no process restart and names the memory limit at once.
 * Largest string (in characters) or range (in items) one step may build; set from the pool's
 * memory limit.
 */
let maxItems = Number.POSITIVE_INFINITY;
const builtinPad = await jsonata('$pad').evaluate({});

function guardedPad(str, width, char) {
  if (Math.abs(width) > maxItems) throw new AllocationTooLarge();
  return builtinPad.implementation.call(this, str, width, char);
}

function compile(source) {
  const cached = cache.get(source);
  if (cached) return cached;
  const compiled = jsonata(source);
  compiled.assign(ENTRY_HOOK, onEvaluateEntry);
  compiled.assign(EXIT_HOOK, onEvaluateExit);
  compiled.registerFunction('pad', guardedPad, '<s-nn?s?:s>');
  collectRanges(compiled.ast());
  cache.set(source, compiled);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value);
  return compiled;
}

function isJsonataFunction(value) {
  return '_jsonata_lambda' in value || '_jsonata_function' in value;
}

class OutputTooLarge extends Error {}

/**
 * JSON text of the result without jsonata's function values (as toJson in expressions.ts).
 * The replacer keeps a running estimate of the size, so a huge result is refused while it is
 * being serialised instead of after a string of its full size was built.
 */
function serialise(value, maxOutputBytes) {
  let estimate = 0;
  return JSON.stringify(value, (key, item) => {
    if (
      typeof item === 'function' ||
      (typeof item === 'object' && item !== null && isJsonataFunction(item))
    ) {
      return undefined;
    }
    estimate += key.length + TOKEN_OVERHEAD;
    if (typeof item === 'string') estimate += item.length;
    else if (typeof item !== 'object' || item === null) estimate += String(item).length;
    if (estimate > maxOutputBytes) throw new OutputTooLarge();
    return item;
  });
}

/** Answers to function calls, sent by pool.ts over this process's IPC channel. */
const pendingCalls = new Map();
let nextCall = 0;
process.on('message', (message) => {
  if (typeof message !== 'object' || message === null || !('wfAnswer' in message)) return;
  const call = pendingCalls.get(message.wfAnswer);
  if (!call) return;
  pendingCalls.delete(message.wfAnswer);
  if (message.error === undefined) call.resolve(message.value);
  else call.reject(new Error(message.error));
});

/** Function bindings (`$secret`) run in the service process: each call is an emitted event. */
function functionProxies(names) {
  const proxies = {};
  for (const name of names) {
    proxies[name] = (...args) =>
      new Promise((resolve, reject) => {
        const id = nextCall++;
        pendingCalls.set(id, { resolve, reject });
        workerpool.workerEmit({ type: 'call', id, name, args });
      });
  }
  return proxies;
}

function failureOf(error) {
  const failure = typeof error === 'object' && error !== null ? error : {};
  const message =
    typeof failure.message === 'string' && failure.message.length > 0
      ? failure.message
      : String(error);
  return {
    message,
    ...(typeof failure.code === 'string' ? { code: failure.code } : {}),
    ...(typeof failure.position === 'number' ? { position: failure.position } : {}),
  };
}

/**
 * One evaluation. Resolves (never rejects) with `{ json }` (JSON text, or undefined for no
 * match), `{ failure }` (an ordinary jsonata error or a guard trip) or `{ limit }` (output, memory).
 */
async function evaluateTask(task) {
  const { source, context, bindings, functions, timeoutMs, maxOutputBytes } = task;
  maxItems = task.maxItems;
  // The pool starts its hard deadline on this event, so time spent queued is not counted; the
  // pid tells it which child to answer function calls on.
  workerpool.workerEmit({ type: 'started', pid: process.pid });
  const guard = new EvaluationGuard(timeoutMs);
  try {
    const compiled = compile(source);
    const proxies = functions.length > 0 ? functionProxies(functions) : {};
    const value = await compiled.evaluate(context, {
      ...bindings,
      ...proxies,
      [GUARD_BINDING]: guard,
    });
    if (value === undefined) return { json: undefined };
    const json = serialise(value, maxOutputBytes);
    if (json !== undefined && Buffer.byteLength(json) > maxOutputBytes) return { limit: 'output' };
    return { json };
  } catch (error) {
    if (error instanceof OutputTooLarge) return { limit: 'output' };
    if (guard.allocationRefused || error instanceof AllocationTooLarge) return { limit: 'memory' };
    // The guard's error may arrive wrapped (e.g. by $eval), so trust the guard's own record.
    if (guard.tripped) return { failure: guard.tripped };
    return { failure: failureOf(error) };
  } finally {
    pendingCalls.clear();
  }
}

workerpool.worker({ evaluate: evaluateTask });
