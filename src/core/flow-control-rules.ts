import type { z } from 'zod';
import {
  concurrencyConfigSchema,
  debounceConfigSchema,
  fairnessKeySchema,
} from '../domain/flow-control.js';
import { checkExpression } from '../engine/expressions.js';
import { childPath } from '../engine/templates.js';
import type { FieldProblem } from '../errors.js';

/**
 * The rules of a workflow's flow-control settings (docs/ARCHITECTURE.md, "Flow control"): each
 * setting's shape from its zod schema, and each key expression parsed, every problem listed.
 */

function schemaProblems(schema: z.ZodType, value: unknown, at: string): FieldProblem[] {
  if (value === undefined) return [];
  const parsed = schema.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({
    path: issue.path.reduce<string>(
      (path, key) => childPath(path, typeof key === 'number' ? key : String(key)),
      at,
    ),
    message: issue.message,
  }));
}

function keyProblem(setting: unknown, at: string): FieldProblem[] {
  if (typeof setting !== 'object' || setting === null) return [];
  const key = (setting as { key?: unknown }).key;
  if (typeof key !== 'string' || key.length === 0) return [];
  const message = checkExpression(key);
  return message ? [{ path: `${at}.key`, message: `invalid expression: ${message}` }] : [];
}

/** Problems of `config.concurrency`, `config.debounce` and `config.fairness_key`. */
export function flowControlProblems(config: Record<string, unknown>): FieldProblem[] {
  return [
    ...schemaProblems(concurrencyConfigSchema, config.concurrency, 'config.concurrency'),
    ...keyProblem(config.concurrency, 'config.concurrency'),
    ...schemaProblems(debounceConfigSchema, config.debounce, 'config.debounce'),
    ...keyProblem(config.debounce, 'config.debounce'),
    ...schemaProblems(fairnessKeySchema, config.fairness_key, 'config.fairness_key'),
    ...keyProblem({ key: config.fairness_key }, 'config').map((problem) => ({
      ...problem,
      path: 'config.fairness_key',
    })),
  ];
}
