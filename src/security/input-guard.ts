import type { FieldProblem } from '../errors.js';

/**
 * Text no request may carry: U+0000 and unpaired UTF-16 surrogates. Postgres stores neither
 * (TEXT refuses NUL, JSONB refuses `\u0000` and lone surrogate escapes), so without this check
 * they surface as database errors deep inside a use case instead of a 400 naming the field.
 * Checked once for every route, in params, query and parsed body, keys included.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what is looked for.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const MESSAGE = 'must not contain U+0000 (NUL) or unpaired UTF-16 surrogates';
/** One problem per request is enough to explain it; the walk stops there. */
const MAX_PROBLEMS = 1;

function label(path: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/**
 * The fields of `value` (and their keys) holding unstorable text, found iteratively. `root`
 * prefixes the paths (`''` for a body: `steps[0].name`, as the workflow validator names them).
 */
export function findUnstorableText(value: unknown, root: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  // Iterative: a hostile body may nest thousands of levels deep.
  const pending: Array<[unknown, string]> = [[value, root]];
  while (pending.length > 0 && problems.length < MAX_PROBLEMS) {
    const [item, path] = pending.pop() as [unknown, string];
    if (typeof item === 'string') {
      if (UNSTORABLE.test(item)) problems.push({ path, message: MESSAGE });
    } else if (Array.isArray(item)) {
      for (let index = item.length - 1; index >= 0; index--) {
        pending.push([item[index], `${path}[${index}]`]);
      }
    } else if (typeof item === 'object' && item !== null) {
      for (const [key, child] of Object.entries(item)) {
        if (UNSTORABLE.test(key)) {
          problems.push({ path: label(path, key.replace(UNSTORABLE, '?')), message: MESSAGE });
          break;
        }
        pending.push([child, label(path, key)]);
      }
    }
  }
  return problems;
}
