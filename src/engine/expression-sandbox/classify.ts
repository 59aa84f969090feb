import jsonata from 'jsonata';

/**
 * Which expressions run in the sandbox. A function call, a regex, a transform, a sort or a
 * function definition can make one evaluation cost more than a walk over its input; everything
 * else (paths, literals, comparisons, arithmetic, boolean logic, `&`, `in`, `? :`, predicates
 * and constructors built from those) stays in process, where it costs nothing extra. Unknown
 * node types go to the sandbox, so a jsonata upgrade errs on the safe side.
 *
 * A range `[a..b]` alone stays in process on purpose: jsonata caps it at 10^7 items and the
 * guard bounds any loop over it, so it needs no child process round trip.
 */
const IN_PROCESS_TYPES: ReadonlySet<string> = new Set([
  'path',
  'binary',
  'unary',
  'name',
  'string',
  'number',
  'value',
  'wildcard',
  'descendant',
  'parent',
  'condition',
  'block',
  'bind',
  'variable',
  'filter',
  'index',
  'focus',
]);
/** Deeper ASTs than this are not walked; they go to the sandbox. */
const MAX_WALK_DEPTH = 200;
const CACHE_LIMIT = 1000;

const cache = new Map<string, boolean>();

function isExpensive(node: unknown, depth: number): boolean {
  if (depth > MAX_WALK_DEPTH) return true;
  if (Array.isArray(node)) return node.some((item) => isExpensive(item, depth + 1));
  if (typeof node !== 'object' || node === null) return false;
  const record = node as Record<string, unknown>;
  const type = record.type;
  if (typeof type === 'string') {
    if (!IN_PROCESS_TYPES.has(type)) return true;
  }
  for (const [key, value] of Object.entries(record)) {
    if (key !== 'value' && typeof value === 'object' && isExpensive(value, depth + 1)) return true;
  }
  return false;
}

function classify(source: string): boolean {
  try {
    return isExpensive(jsonata(source).ast(), 0);
  } catch {
    // Does not parse: the in-process path reports the syntax error as it always has.
    return false;
  }
}

/** True when `source` may be expensive and must be evaluated in the sandbox (cached). */
export function needsSandbox(source: string): boolean {
  const cached = cache.get(source);
  if (cached !== undefined) return cached;
  const result = classify(source);
  cache.set(source, result);
  if (cache.size > CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  return result;
}
