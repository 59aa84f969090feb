import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { context as otelContext, propagation } from '@opentelemetry/api';
import { z } from 'zod';
import { redactSecrets } from '../secrets.js';
import { canonicalIp, checkDestination, createGuardedLookup, SsrfBlockedError } from './ssrf.js';
import type { StepInvocation, StepOutcome, StepTypeDefinition } from './types.js';
import { defineStepType, StepFailure } from './types.js';

/**
 * The `http` step: one request with method/headers/body, redirects followed by hand so every
 * hop passes the SSRF guard again. It uses node:http rather than fetch because the guard
 * must own DNS resolution (the `lookup` option), which the built-in fetch cannot take.
 */

const MAX_REDIRECTS = 5;
const SNIPPET_CHARS = 500;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that carry credentials for one origin; a redirect elsewhere must not forward them. */
const ORIGIN_BOUND_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * The config as written, checked when a workflow is saved; parseConfig checks the resolved
 * config again at run time, since templates may stand for any of these fields.
 */
const configSchema = z.looseObject({
  url: z.string({ error: 'must be a non-empty string' }).refine((url) => {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    return parsed?.protocol === 'http:' || parsed?.protocol === 'https:';
  }, 'must be an http: or https: URL'),
  method: z.string().regex(METHOD, 'must be an HTTP method name').optional(),
  headers: z
    .record(
      z.string(),
      z.union([z.string(), z.number(), z.boolean(), z.null()], { error: 'must be a string' }),
      { error: 'must be an object of strings' },
    )
    .optional(),
  timeout_ms: z.number({ error: 'must be a positive number' }).positive().optional(),
  expected_status: z
    .array(
      z
        .number({ error: 'must be an HTTP status code' })
        .int('must be an HTTP status code')
        .min(100, 'must be an HTTP status code')
        .max(599, 'must be an HTTP status code'),
      { error: 'must be a list of HTTP status codes' },
    )
    .optional(),
});

interface HttpStepConfig {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  timeoutMs: number | undefined;
  expectedStatus: readonly number[] | undefined;
}

interface HttpResponseOutput {
  status: number;
  headers: Record<string, string | string[]>;
  body: unknown;
}

function invalidConfig(message: string): StepFailure {
  return new StepFailure(`Invalid http step config: ${message}`, {
    type: 'invalid_config',
    retryable: false,
  });
}

function parseConfig(config: Record<string, unknown>): HttpStepConfig {
  const { url, method = 'GET', headers = {}, body, timeout_ms, expected_status } = config;
  if (typeof url !== 'string' || url === '')
    throw invalidConfig('`url` must be a non-empty string');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidConfig(`\`url\` is not a valid URL: ${redactSecrets(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidConfig(`only http: and https: URLs are supported, got ${parsed.protocol}`);
  }
  if (typeof method !== 'string' || !METHOD.test(method)) {
    throw invalidConfig('`method` must be an HTTP method name');
  }
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw invalidConfig('`headers` must be an object of strings');
  }
  const headerMap: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === null || value === undefined) continue;
    // Templates often produce numbers (ids, sizes); those have one obvious text form.
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw invalidConfig(`header ${name} must be a string`);
    }
    headerMap[name.toLowerCase()] = String(value);
  }
  let payload: string | undefined;
  if (typeof body === 'string') {
    payload = body;
  } else if (body !== undefined && body !== null) {
    payload = JSON.stringify(body);
    headerMap['content-type'] ??= 'application/json';
  }
  if (
    timeout_ms !== undefined &&
    (typeof timeout_ms !== 'number' || !Number.isFinite(timeout_ms) || timeout_ms <= 0)
  ) {
    throw invalidConfig('`timeout_ms` must be a positive number');
  }
  if (
    expected_status !== undefined &&
    (!Array.isArray(expected_status) ||
      !expected_status.every((code) => Number.isInteger(code) && code >= 100 && code <= 599))
  ) {
    throw invalidConfig('`expected_status` must be a list of HTTP status codes');
  }
  return {
    url: parsed,
    method: method.toUpperCase(),
    headers: headerMap,
    body: payload,
    timeoutMs: timeout_ms,
    expectedStatus: expected_status as number[] | undefined,
  };
}

/**
 * Where a URL points, for messages: no credentials, no query string, and no `$secret()` value
 * in the path (webhook URLs often are the secret).
 */
function describeUrl(url: URL): string {
  return redactSecrets(`${url.protocol}//${url.host}${url.pathname}`);
}

function blocked(error: SsrfBlockedError, url: URL): StepFailure {
  return new StepFailure(`${error.message} (${describeUrl(url)})`, {
    type: 'ssrf_blocked',
    retryable: false,
    details: { hostname: error.hostname, address: error.address, class: error.addressClass },
  });
}

/** Refuses a hop before any connection: bad scheme, or an IP literal that is not allowed. */
function checkHop(url: URL, allowlist: readonly string[]): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new StepFailure(`Refused to follow a redirect to a ${url.protocol} URL`, {
      type: 'ssrf_blocked',
      retryable: false,
    });
  }
  // Node connects to IP literals without calling `lookup`, so the guard must look here.
  const ip = canonicalIp(url.hostname);
  if (ip !== undefined) {
    const refusal = checkDestination(ip, ip, allowlist);
    if (refusal) throw blocked(refusal, url);
  }
}

function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

function retryAfterMs(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function charsetOf(contentType: string | undefined): string {
  const match = /charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '');
  return match?.[1] ?? 'utf-8';
}

function decode(bytes: Buffer, contentType: string | undefined): string {
  try {
    return new TextDecoder(charsetOf(contentType)).decode(bytes);
  } catch {
    // An unknown charset label: utf-8 is the best guess for a JSON-era API.
    return bytes.toString('utf8');
  }
}

function isJsonType(contentType: string | undefined): boolean {
  const essence = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return essence === 'application/json' || essence.endsWith('+json') || essence === 'text/json';
}

function parseBody(bytes: Buffer, contentType: string | undefined): unknown {
  const text = decode(bytes, contentType);
  if (!isJsonType(contentType)) return text;
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // A server that mislabels its body still produced an answer worth recording.
    return text;
  }
}

function snippet(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text;
}

function plainHeaders(response: IncomingMessage): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  return headers;
}

interface Hop {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

interface HopContext {
  signal: AbortSignal;
  allowlist: readonly string[];
  maxBytes: number;
}

/** Sends one request and returns the response head; the body is still unread. */
function send(hop: Hop, context: HopContext): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const transport = hop.url.protocol === 'https:' ? https : http;
    const headers: OutgoingHttpHeaders = { ...hop.headers };
    if (hop.body !== undefined) headers['content-length'] = Buffer.byteLength(hop.body);
    // The attempt's trace context (README "Tracing"); a no-op while tracing is off.
    propagation.inject(otelContext.active(), headers);
    let request: http.ClientRequest;
    try {
      request = transport.request({
        protocol: hop.url.protocol,
        hostname: hostOf(hop.url),
        port: hop.url.port === '' ? undefined : Number(hop.url.port),
        path: `${hop.url.pathname}${hop.url.search}`,
        method: hop.method,
        headers,
        auth:
          hop.url.username === ''
            ? undefined
            : `${decodeURIComponent(hop.url.username)}:${decodeURIComponent(hop.url.password)}`,
        lookup: createGuardedLookup(context.allowlist),
        // A pooled socket would skip `lookup`, and it may have been opened under another
        // allowlist; one connection per request keeps every connection guarded.
        agent: false,
        signal: context.signal,
      });
    } catch (error) {
      reject(invalidConfig(error instanceof Error ? error.message : String(error)));
      return;
    }
    request.once('response', resolve);
    request.on('error', reject);
    request.end(hop.body);
  });
}

/** Reads the body up to `maxBytes`; larger bodies are cut off, never buffered. */
function readBody(response: IncomingMessage, context: HopContext, url: URL): Promise<Buffer> {
  const tooLarge = (): StepFailure =>
    new StepFailure(
      `Response from ${describeUrl(url)} exceeds the limit of ${context.maxBytes} bytes`,
      { type: 'response_too_large', retryable: false, details: { limit: context.maxBytes } },
    );
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > context.maxBytes) {
    response.destroy();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > context.maxBytes) {
        response.destroy();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    response.once('end', () => resolve(Buffer.concat(chunks)));
    response.on('error', reject);
    // A body cut short without an 'error' (e.g. the request was destroyed) must still settle.
    response.once('close', () => {
      if (!response.complete) reject(new Error('response closed before it was complete'));
    });
  });
}

function nextHop(hop: Hop, status: number, location: string, secrets: readonly string[]): Hop {
  let url: URL;
  try {
    url = new URL(location, hop.url);
  } catch {
    throw new StepFailure(`Redirect from ${describeUrl(hop.url)} to an invalid URL`, {
      type: 'http_redirect',
      retryable: false,
    });
  }
  let { method, body } = hop;
  const headers = { ...hop.headers };
  // Fetch semantics: 303 always becomes GET, 301/302 turn a POST into GET.
  if (
    status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST'
  ) {
    method = 'GET';
    body = undefined;
    delete headers['content-type'];
  }
  if (url.origin !== hop.url.origin) {
    for (const name of ORIGIN_BOUND_HEADERS) delete headers[name];
    // A credential may travel in any header (`x-api-token`), and it belongs to one origin too.
    for (const [name, value] of Object.entries(headers)) {
      if (secrets.some((secret) => value.includes(secret))) delete headers[name];
    }
  }
  return { url, method, headers, body };
}

function failureFor(status: number, output: HttpResponseOutput, hop: Hop): StepFailure {
  const retryable = status === 429 || status >= 500;
  const header = output.headers['retry-after'];
  const wait =
    status === 429 || status === 503
      ? retryAfterMs(Array.isArray(header) ? header[0] : header)
      : undefined;
  const body = snippet(output.body);
  return new StepFailure(`HTTP ${status} from ${hop.method} ${describeUrl(hop.url)}: ${body}`, {
    type: 'http_status',
    retryable,
    ...(wait === undefined ? {} : { retryAfterMs: wait }),
    details: { status, headers: output.headers, body },
  });
}

function networkFailure(error: unknown, hop: Hop, invocation: StepInvocation): StepFailure {
  if (invocation.signal.aborted) {
    return new StepFailure(`Request to ${describeUrl(hop.url)} was aborted`, {
      type: 'aborted',
      retryable: true,
      details: { reason: String(invocation.signal.reason) },
    });
  }
  const errno = error as NodeJS.ErrnoException;
  const timedOut = errno.name === 'AbortError' || errno.name === 'TimeoutError';
  const message = timedOut
    ? `timed out after ${invocation.config.timeout_ms} ms`
    : `${errno.code ?? errno.name}: ${errno.message}`;
  return new StepFailure(`Request to ${describeUrl(hop.url)} failed: ${message}`, {
    type: 'network_error',
    retryable: true,
    details: { code: timedOut ? 'ETIMEDOUT' : errno.code },
  });
}

async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const config = parseConfig(invocation.config);
  const allowlist = invocation.env.httpAllowedHosts;
  const signal =
    config.timeoutMs === undefined
      ? invocation.signal
      : AbortSignal.any([invocation.signal, AbortSignal.timeout(config.timeoutMs)]);
  const context: HopContext = { signal, allowlist, maxBytes: invocation.env.httpMaxResponseBytes };
  let hop: Hop = {
    url: config.url,
    method: config.method,
    headers: config.headers,
    body: config.body,
  };

  for (let redirects = 0; ; redirects++) {
    checkHop(hop.url, allowlist);
    let response: IncomingMessage;
    let bytes: Buffer;
    try {
      response = await send(hop, context);
      const location = response.headers.location;
      if (
        REDIRECTS.has(response.statusCode ?? 0) &&
        location !== undefined &&
        !config.expectedStatus?.includes(response.statusCode ?? 0)
      ) {
        response.destroy();
        if (redirects >= MAX_REDIRECTS) {
          throw new StepFailure(
            `More than ${MAX_REDIRECTS} redirects from ${describeUrl(config.url)}`,
            {
              type: 'http_redirect',
              retryable: false,
            },
          );
        }
        hop = nextHop(hop, response.statusCode ?? 0, location, invocation.secrets ?? []);
        continue;
      }
      bytes = await readBody(response, context, hop.url);
    } catch (error) {
      if (error instanceof StepFailure) throw error;
      if (error instanceof SsrfBlockedError) throw blocked(error, hop.url);
      throw networkFailure(error, hop, invocation);
    }

    const status = response.statusCode ?? 0;
    const output: HttpResponseOutput = {
      status,
      headers: plainHeaders(response),
      body: parseBody(bytes, response.headers['content-type']),
    };
    const ok = config.expectedStatus
      ? config.expectedStatus.includes(status)
      : status >= 200 && status < 300;
    if (ok) return { kind: 'completed', output };
    throw failureFor(status, output, hop);
  }
}

export const httpStep: StepTypeDefinition = defineStepType({
  type: 'http',
  configSchema,
  // Its output is the response only, never the config, so a credential in it stays unseen.
  allowsSecrets: true,
  // Network-bound: each call goes through the queue, so calls spread over every worker process.
  runsInline: false,
  run,
});
