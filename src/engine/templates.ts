import { ExpressionLimitError } from './expression-sandbox/index.js';
import {
  checkExpression,
  type EvaluateOptions,
  ExpressionError,
  evaluateExpression,
  messageOf,
} from './expressions.js';
import { secretBindings } from './steps/registry.js';
import { type ExpressionContext, StepFailure } from './steps/types.js';

/**
 * The `{% ... %}` templates of step config (docs/ARCHITECTURE.md, "Workflows and expressions"): a string that
 * is wholly a template is replaced by its expression's value when the step runs; any other
 * string is a literal. `$secret()` exists only here, for the step type whose declaration
 * allows it.
 */

const TEMPLATE = /^\{%([\s\S]*)%\}$/;

export interface ResolveOptions extends EvaluateOptions {
  /** Path of `value` itself, prefixed to the path of a failing field (e.g. `config`). */
  basePath?: string;
  /**
   * The step type whose config this is: `$secret()` is bound, and works when the type's
   * declaration allows it (registry's secretBindings). Without it there is no `$secret()`.
   */
  stepType?: string;
  /** Receives every value `$secret()` handed out, for the runner to scrub. */
  obtainedSecrets?: Set<string>;
}

export interface TemplateProblem {
  path: string;
  message: string;
}

/** True when the whole string is one `{% ... %}` template. */
export function isTemplate(value: string): boolean {
  return TEMPLATE.test(value);
}

function templateSource(value: string): string | undefined {
  return TEMPLATE.exec(value)?.[1];
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

export function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (!IDENTIFIER.test(key)) return `${base}[${JSON.stringify(key)}]`;
  return base === '' ? key : `${base}.${key}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Replaces every string that is wholly `{% expr %}` with the expression's value, deep inside
 * objects and arrays; other strings are literals. A template yielding nothing drops its
 * object field, or becomes null in an array, as JSON serialisation would.
 */
export async function resolveTemplates(
  value: unknown,
  context: ExpressionContext,
  options: ResolveOptions,
): Promise<unknown> {
  const { stepType, obtainedSecrets, basePath, ...evaluate } = options;
  const bindings =
    stepType === undefined
      ? evaluate.bindings
      : { ...secretBindings(stepType, process.env, obtainedSecrets), ...evaluate.bindings };
  return resolveAt(value, basePath ?? '', context, { ...evaluate, bindings });
}

async function resolveAt(
  value: unknown,
  path: string,
  context: ExpressionContext,
  options: EvaluateOptions,
): Promise<unknown> {
  if (typeof value === 'string') {
    const source = templateSource(value);
    if (source === undefined) return value;
    try {
      return await evaluateExpression(source, context, options);
    } catch (error) {
      const where = path === '' ? 'template' : path;
      // A hard limit fails the step as such (not retried), whatever the runner does with ExpressionError.
      if (error instanceof ExpressionLimitError) {
        throw new StepFailure(`${where}: ${error.message}`, {
          type: error.code,
          retryable: false,
          details: { limit: error.limit, path },
        });
      }
      const cause = error instanceof ExpressionError ? error : undefined;
      throw new ExpressionError(`${where}: ${messageOf(error)}`, {
        source,
        ...(cause?.position !== undefined ? { position: cause.position } : {}),
        ...(cause?.code !== undefined ? { code: cause.code } : {}),
        path,
        cause: error,
      });
    }
  }
  if (Array.isArray(value)) {
    const resolved: unknown[] = [];
    for (const [index, item] of value.entries()) {
      const result = await resolveAt(item, childPath(path, index), context, options);
      resolved.push(result === undefined ? null : result);
    }
    return resolved;
  }
  if (isPlainObject(value)) {
    const entries: [string, unknown][] = [];
    for (const [key, item] of Object.entries(value)) {
      const result = await resolveAt(item, childPath(path, key), context, options);
      if (result !== undefined) entries.push([key, result]);
    }
    // fromEntries defines own properties, so a `__proto__` key stays data.
    return Object.fromEntries(entries);
  }
  return value;
}

/** Lists every `{% %}` template inside `value` that does not parse, with its JSON path. */
export function findTemplateProblems(value: unknown, basePath: string): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  const visit = (item: unknown, path: string): void => {
    if (typeof item === 'string') {
      const source = templateSource(item);
      if (source === undefined) return;
      const message = checkExpression(source);
      if (message !== null) problems.push({ path, message });
    } else if (Array.isArray(item)) {
      for (const [index, child] of item.entries()) visit(child, childPath(path, index));
    } else if (isPlainObject(item)) {
      for (const [key, child] of Object.entries(item)) visit(child, childPath(path, key));
    }
  };
  visit(value, basePath);
  return problems;
}
