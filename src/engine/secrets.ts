/**
 * Secrets for step config (README "Security"): `{% $secret('NAME') %}` reads the environment
 * variable `WF_SECRET_NAME`, and only variables with that prefix, so a workflow definition can
 * name a credential without holding it and cannot read the rest of the environment. Which step
 * types may use it is each type's own declaration (`allowsSecrets`); the registry builds the
 * bindings from it.
 */
export const SECRET_ENV_PREFIX = 'WF_SECRET_';
const SECRET_NAME = /^[A-Za-z0-9_]{1,64}$/;
/**
 * Values shorter than this are neither redacted nor scrubbed. Scrubbing `42` would rewrite every
 * `42` in a step's output, corrupting data later steps read, for no protection: a value of three
 * characters or fewer is guessed in a few hundred thousand tries, so it is no secret to keep.
 */
const MIN_REDACTED_SECRET_LENGTH = 4;
const PLACEHOLDER = '[secret]';

export interface SecretFunctionOptions {
  /** The step type's declaration: may its config use `$secret()`? */
  allowed: boolean;
  /** The message when it may not; built lazily because only a refusal needs it. */
  refusal: () => string;
  env: NodeJS.ProcessEnv;
  /** Collects every value handed out, so the runner can scrub them from what it records. */
  obtained?: Set<string>;
}

/** The `secret` binding of a step's config templates: `$secret(name)`. */
export function secretFunction(options: SecretFunctionOptions): (name: unknown) => string {
  return (name: unknown): string => {
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) {
      throw new Error('$secret(name): name must be 1-64 letters, digits or "_"');
    }
    if (!options.allowed) throw new Error(options.refusal());
    const variable = `${SECRET_ENV_PREFIX}${name.toUpperCase()}`;
    const value = options.env[variable];
    if (value === undefined || value === '') {
      throw new Error(`$secret('${name}'): the environment variable ${variable} is not set`);
    }
    options.obtained?.add(value);
    return value;
  };
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * The spellings of `value` an echoing server produces: as is, JSON-escaped (also with `\/` and
 * `\uXXXX`, as some encoders write), percent-encoded (path or form style) and HTML-escaped.
 * Longest first, so a longer form is replaced before a shorter one inside it.
 */
export function secretForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const escapeUnicode = (text: string, upper: boolean): string =>
    text.replace(/[^\x20-\x7e]/g, (char) => {
      const hex = char.charCodeAt(0).toString(16).padStart(4, '0');
      return `\\u${upper ? hex.toUpperCase() : hex}`;
    });
  const jsonForms = [json, escapeUnicode(json, false), escapeUnicode(json, true)].flatMap(
    (form) => [form, form.replaceAll('/', '\\/')],
  );
  const forms = new Set([
    value,
    ...jsonForms,
    encodeURIComponent(value),
    encodeURIComponent(value).replaceAll('%20', '+'),
    encodeURI(value),
    value.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char),
    value.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`),
  ]);
  return [...forms]
    .filter((form) => form.length >= MIN_REDACTED_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
}

/** Replaces every configured secret value inside `text` with `[secret]` (messages, URLs). */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv = process.env): string {
  let result = text;
  for (const [name, value] of Object.entries(env)) {
    if (
      name.startsWith(SECRET_ENV_PREFIX) &&
      value !== undefined &&
      value.length >= MIN_REDACTED_SECRET_LENGTH
    ) {
      result = result.replaceAll(value, PLACEHOLDER);
      // Inside a URL the value may appear percent-encoded.
      const encoded = encodeURIComponent(value);
      if (encoded !== value) result = result.replaceAll(encoded, PLACEHOLDER);
    }
  }
  return result;
}

/** How a shortened text ends (the http step's body snippets). */
const ELLIPSIS = '…';

/**
 * A text cut short may end in the first characters of a secret; those are a secret's prefix
 * all the same (and a good head start at guessing the rest), so they go too.
 */
function scrubCutTail(text: string, forms: readonly string[]): string {
  const body = text.slice(0, -ELLIPSIS.length);
  for (const form of forms) {
    for (let length = form.length - 1; length >= MIN_REDACTED_SECRET_LENGTH; length--) {
      if (body.endsWith(form.slice(0, length))) {
        return `${body.slice(0, -length)}${PLACEHOLDER}${ELLIPSIS}`;
      }
    }
  }
  return text;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * A deep copy of `value` in which every string (and object key) has each of `secrets`, in any
 * form secretForms knows, replaced by `[secret]`. Values that are not plain JSON (a Date, an
 * Error) are kept as they are: step results are JSON by the time they are recorded.
 */
export function scrubSecrets<T>(value: T, secrets: Iterable<string>): T {
  const forms = [...new Set([...secrets].flatMap(secretForms))].sort((a, b) => b.length - a.length);
  if (forms.length === 0) return value;
  const scrubText = (text: string): string => {
    let result = text;
    for (const form of forms) {
      if (result.includes(form)) result = result.replaceAll(form, PLACEHOLDER);
    }
    return result.endsWith(ELLIPSIS) ? scrubCutTail(result, forms) : result;
  };
  const visit = (item: unknown): unknown => {
    if (typeof item === 'string') return scrubText(item);
    if (Array.isArray(item)) return item.map(visit);
    if (isPlainRecord(item)) {
      // fromEntries defines own properties, so a `__proto__` key stays data.
      return Object.fromEntries(
        Object.entries(item).map(([key, child]) => [scrubText(key), visit(child)]),
      );
    }
    return item;
  };
  return visit(value) as T;
}
