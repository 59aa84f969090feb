import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKey, TEST_JWT_SECRET, tokenFor } from '../helpers/security.js';
import { useTestApp } from '../helpers/test-app.js';

/**
 * Hostile input through every route (in-process, app.inject): wrong types, huge strings, deep
 * nesting, prototype-pollution keys, SQL and script fragments in every string field, bad ids,
 * cursors and encodings, wrong content types, bad credentials. Properties: no 5xx, every error
 * is problem+json, a rejected request stores nothing, and valid strings are stored verbatim.
 * Deterministic: fixed seeds.
 */

// HTTP only (no workers): executions the fuzzer starts stay queued instead of using the CPU.
const ctx = useTestApp({ AUTH_MODE: 'both', JWT_SECRET: TEST_JWT_SECRET, SERVICE_ROLE: 'api' });
const SEED = 20261125;
const RUNS = 10_000;
const CONCURRENCY = 6;

let adminKey = '';
const adminToken = tokenFor('admin');
let workflowId = '';
let executionId = '';

const SQL = [
  "' OR '1'='1",
  "'; DROP TABLE workflows; --",
  '1; SELECT pg_sleep(10); --',
  '" OR ""="',
  "' UNION SELECT key_hash::text FROM api_keys --",
  "%' AND 1=1 --",
  "\\'; DELETE FROM api_keys; --",
  '$1',
  "'||(SELECT version())||'",
  '1)) OR ((1=1',
  "E'\\\\x00'",
  '::jsonb',
  'ROLLBACK; --',
  '/**/OR/**/1=1',
  '\\',
  '%',
  '_',
];
const SCRIPT = [
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
  '{{constructor.constructor("return process")()}}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a template injection attempt, as text.
  '${process.exit(1)}',
  "{% $eval('$$') %}",
  "{% $secret('DATABASE_URL') %}",
  '../../../../etc/passwd',
  '..%2f..%2f',
  '\r\nSet-Cookie: a=b',
  '\u202egnp.exe',
  '\ufeff',
  '\u0000',
  '\ud800',
  'null',
  'undefined',
  'NaN',
  '__proto__',
  'constructor',
  'prototype',
];
const LONG = ['a'.repeat(256), 'b'.repeat(1001)];
const HUGE = 'c'.repeat(70_000);
const POLLUTION_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
const FIELD_KEYS = [
  'name',
  'workflow_type',
  'steps',
  'config',
  'input_data',
  'type',
  'data',
  'role',
  'worker_id',
  'output',
  'error',
  'limit',
  'cursor',
  'status',
];

// Long and huge strings are rare: one in a request is enough, and they cost every layer.
const hostileString = fc.oneof(
  { weight: 60, arbitrary: fc.constantFrom(...SQL, ...SCRIPT) },
  { weight: 40, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 20, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 8, arbitrary: fc.constantFrom(...LONG) },
  { weight: 1, arbitrary: fc.constant(HUGE) },
);
const hostileKey = fc.oneof(
  fc.constantFrom(...POLLUTION_KEYS, ...FIELD_KEYS),
  fc.string({ maxLength: 12 }),
);
const deep = fc.constantFrom(
  `${'['.repeat(5000)}${']'.repeat(5000)}`,
  `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`,
  `{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`,
);

/** JSON text, written by hand so `__proto__` keys and odd numbers survive as sent. */
const { json } = fc.letrec<{ json: string; leaf: string; array: string; object: string }>(
  (tie) => ({
    leaf: fc.oneof(
      hostileString.map((value) => JSON.stringify(value)),
      fc.integer().map(String),
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((value) => JSON.stringify(value)),
      fc.constantFrom('true', 'false', 'null', '1e400', '-0', '123456789012345678901234567890'),
    ),
    array: fc.array(tie('json'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    object: fc
      .array(fc.tuple(hostileKey, tie('json')), { maxLength: 5 })
      .map(
        (entries) =>
          `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`,
      ),
    json: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      tie('leaf'),
      tie('array'),
      tie('object'),
    ),
  }),
);
const hostileJson = fc.oneof({ weight: 30, arbitrary: json }, { weight: 1, arbitrary: deep });

const MALFORMED_BODIES = [
  '',
  '{',
  '{"name": }',
  '{"name": "a",}',
  "{'name': 'a'}",
  '{"name": NaN}',
  '\ufeff{"name": "a"}',
  '[]',
  '"just a string"',
  '{"a":1}{"b":2}',
  'null',
];

const VALID_WORKFLOW = {
  name: 'fuzz',
  workflow_type: 'sequential',
  description: 'fuzz target',
  tags: ['t'],
  metadata: {},
  config: {},
  steps: [{ id: 'a', name: 'A', step_type: 'noop', config: { k: 'v' } }],
};
const WORKFLOW_HOLES = [
  ['name'],
  ['description'],
  ['workflow_type'],
  ['status'],
  ['tags'],
  ['tags', 0],
  ['metadata'],
  ['config'],
  ['config', 'max_concurrency'],
  ['steps'],
  ['steps', 0],
  ['steps', 0, 'id'],
  ['steps', 0, 'name'],
  ['steps', 0, 'step_type'],
  ['steps', 0, 'config'],
  ['steps', 0, 'config', 'k'],
  ['steps', 0, 'dependencies'],
  ['steps', 0, 'condition'],
  ['steps', 0, 'for_each'],
  ['steps', 0, 'retry_count'],
  ['steps', 0, 'timeout_seconds'],
  ['steps', 0, 'retry_backoff'],
  ['steps', 0, 'agent_id'],
  ['unknown_field'],
] as const;

const HOLE = 'HOLE_3f9a1c';

/** The valid workflow with one field replaced by hostile JSON text. */
function workflowWith(path: readonly (string | number)[], value: string): string {
  const copy = structuredClone(VALID_WORKFLOW) as Record<string, unknown>;
  let target: Record<string | number, unknown> = copy;
  for (const part of path.slice(0, -1)) target = target[part] as Record<string | number, unknown>;
  target[path.at(-1) as string | number] = HOLE;
  return JSON.stringify(copy).replace(`"${HOLE}"`, value);
}

/** A body for a route: hostile JSON, a valid template with one hostile field, or broken text. */
function bodyFor(method: string, url: string) {
  const around = (keys: string[]) =>
    fc
      .tuple(fc.constantFrom(...keys), hostileJson)
      .map(([key, value]) => `{${JSON.stringify(key)}:${value}}`);
  const templated =
    method === 'POST' && url === '/workflows'
      ? fc
          .tuple(fc.constantFrom(...WORKFLOW_HOLES), hostileJson)
          .map(([path, value]) => workflowWith(path, value))
      : method === 'PUT'
        ? around(['name', 'description', 'status', 'steps', 'tags', 'config', 'metadata'])
        : url.endsWith('/execute')
          ? around(['input_data'])
          : url === '/events'
            ? fc
                .tuple(hostileJson, hostileJson)
                .map(([type, data]) => `{"type":${type},"data":${data}}`)
            : url === '/api-keys'
              ? fc
                  .tuple(hostileJson, fc.constantFrom('"viewer"', '"root"', '0'))
                  .map(([name, role]) => `{"name":${name},"role":${role}}`)
              : url.startsWith('/tasks')
                ? around(['worker_id', 'output', 'error', 'step_types', 'max_tasks'])
                : hostileJson;
  return fc.oneof(
    { weight: 4, arbitrary: templated },
    { weight: 2, arbitrary: hostileJson },
    { weight: 1, arbitrary: fc.constantFrom(...MALFORMED_BODIES) },
  );
}

/** Percent-encodes any string, lone surrogates included (sent as U+FFFD's UTF-8). */
function encode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return encodeURIComponent(Buffer.from(value, 'utf8').toString('utf8'));
  }
}

const MALFORMED_SEGMENTS = ['%', '%zz', '%E0%A4%A', '%00', '..%2f..', '%C0%AE', '%2e%2e', '%FF'];

function idArbitrary(allowKnown: boolean) {
  const hostile = fc.oneof(
    { weight: 5, arbitrary: hostileString.map((value) => encode(value) || 'x') },
    { weight: 1, arbitrary: fc.constantFrom(...MALFORMED_SEGMENTS) },
  );
  if (!allowKnown) return hostile;
  return fc.oneof(
    { weight: 4, arbitrary: hostile },
    { weight: 1, arbitrary: fc.constantFrom('KNOWN_WORKFLOW', 'KNOWN_EXECUTION') },
  );
}

const QUERY_KEYS = [
  'limit',
  'cursor',
  'status',
  'workflow_id',
  'workflow_type',
  'tag',
  'search',
  'created_after',
  'created_before',
  'type',
  'correlation_key',
  'received_after',
  'last_event_id',
  'access_token',
  '__proto__',
  'constructor',
  '__proto__[polluted]',
  'limit[]',
];
const cursorLike = fc
  .tuple(hostileString, hostileString)
  .map(([c, i]) => Buffer.from(JSON.stringify({ c, i })).toString('base64url'));
const queryValue = fc.oneof(
  hostileString.map(encode),
  cursorLike,
  fc.integer().map(String),
  fc.constantFrom(
    '-1',
    '0',
    '1e3',
    '101',
    '9999999999999999999',
    'true',
    '',
    ...MALFORMED_SEGMENTS,
  ),
);
const query = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 8 }).map(encode)),
      queryValue,
    ),
    { maxLength: 4 },
  )
  .map((entries) =>
    entries.length === 0 ? '' : `?${entries.map(([key, value]) => `${key}=${value}`).join('&')}`,
  );

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'application/xml',
  undefined,
];

type Auth = 'admin-jwt' | 'admin' | 'none' | 'garbage' | 'forged-key' | 'forged-jwt';
const auth = fc.oneof(
  // Mostly a JWT (verified in memory), some API keys (a database lookup each).
  { weight: 22, arbitrary: fc.constant<Auth>('admin-jwt') },
  { weight: 8, arbitrary: fc.constant<Auth>('admin') },
  { weight: 1, arbitrary: fc.constantFrom<Auth>('none', 'garbage', 'forged-key', 'forged-jwt') },
);

const printableHeader = fc
  .string({ maxLength: 300 })
  .map((value) => value.replace(/[^\x20-\x7e]/g, '?'));

interface Route {
  method: string;
  url: string;
  queryToken: boolean;
}

interface FuzzRequest {
  route: Route;
  params: string[];
  query: string;
  body: string | undefined;
  contentType: string | undefined;
  auth: Auth;
  idempotencyKey: string | null;
  requestId: string | null;
}

/** Routes taking input get most of the traffic; fixed documents (docs, metrics) little. */
function weightOf(route: Route): number {
  if (route.url.includes(':') || ['POST', 'PUT', 'DELETE'].includes(route.method)) return 6;
  if (route.url.endsWith('*') || route.url === '/workflows' || route.url === '/executions')
    return 4;
  return 1;
}

function requestArbitrary(routes: Route[]): fc.Arbitrary<FuzzRequest> {
  const route = fc.oneof(
    ...routes.map((candidate) => ({
      weight: weightOf(candidate),
      arbitrary: fc.constant(candidate),
    })),
  );
  return route.chain((route) => {
    const params = (route.url.match(/:[^/]+|\*$/g) ?? []).map(() =>
      idArbitrary(route.method !== 'DELETE' && !route.queryToken),
    );
    const hasBody = ['POST', 'PUT', 'PATCH'].includes(route.method);
    return fc.record({
      route: fc.constant(route),
      params: fc.tuple(...params).map((values): string[] => [...values]),
      query,
      body: hasBody ? bodyFor(route.method, route.url) : fc.constant<string | undefined>(undefined),
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constant('application/json') },
        { weight: 1, arbitrary: fc.constantFrom<string | undefined>(...CONTENT_TYPES) },
      ),
      auth,
      idempotencyKey: fc.option(printableHeader, { freq: 8 }),
      requestId: fc.option(printableHeader, { freq: 8 }),
    });
  });
}

function toInject(generated: FuzzRequest): InjectOptions {
  const { route } = generated;
  let index = 0;
  const path = route.url.replace(/:[^/]+|\*$/g, () => {
    const value = generated.params[index++] ?? 'x';
    if (value === 'KNOWN_WORKFLOW') return workflowId;
    if (value === 'KNOWN_EXECUTION') return executionId;
    return value;
  });
  const headers: Record<string, string> = {};
  switch (generated.auth) {
    case 'admin':
      headers['x-api-key'] = adminKey;
      break;
    case 'admin-jwt':
      headers.authorization = `Bearer ${adminToken}`;
      break;
    case 'garbage':
      headers.authorization = 'Bearer \u00ff'.replace(/[^\x20-\x7e]/g, 'x');
      break;
    case 'forged-key':
      headers['x-api-key'] = `wfk_${'0'.repeat(16)}_${'A'.repeat(43)}`;
      break;
    case 'forged-jwt':
      headers.authorization = 'Bearer eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJhZG1pbiJdfQ.';
      break;
    case 'none':
      break;
  }
  if (generated.idempotencyKey !== null) headers['idempotency-key'] = generated.idempotencyKey;
  if (generated.requestId !== null) headers['x-request-id'] = generated.requestId;
  let payload = generated.body;
  if (route.url === '/tasks/poll' && payload !== undefined) {
    // A valid long poll would wait up to 30 s: waiting is not what is under test here.
    try {
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed === 'object' && parsed !== null && 'wait_seconds' in parsed) {
        payload = JSON.stringify({ ...parsed, wait_seconds: 0 });
      }
    } catch {
      // not JSON: stays as generated
    }
  }
  if (payload !== undefined && generated.contentType !== undefined) {
    headers['content-type'] = generated.contentType;
  }
  return {
    method: route.method as 'GET',
    url: `${path}${generated.query}`,
    headers,
    ...(payload === undefined ? {} : { payload }),
  };
}

interface RowCounts {
  workflows: number;
  executions: number;
  api_keys: number;
  events: number;
}

async function rowCounts(): Promise<RowCounts> {
  const { rows } = await ctx.app.pg.query<RowCounts>(
    `SELECT (SELECT count(*) FROM workflows)::int AS workflows,
            (SELECT count(*) FROM workflow_executions)::int AS executions,
            (SELECT count(*) FROM api_keys)::int AS api_keys,
            (SELECT count(*) FROM events)::int AS events`,
  );
  const [counts] = rows;
  if (!counts) throw new Error('no counts');
  return counts;
}

beforeAll(async () => {
  adminKey = (await createKey(ctx.app, 'admin', 'fuzzer')).key;
  const created = await ctx.app.inject({
    method: 'POST',
    url: '/workflows',
    headers: { 'x-api-key': adminKey },
    payload: VALID_WORKFLOW,
  });
  workflowId = created.json().id;
  const started = await ctx.app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    headers: { 'x-api-key': adminKey },
    payload: { input_data: { a: 1 } },
  });
  executionId = started.json().id;
});

describe('hostile requests', () => {
  it('refuses prototype-poisoning keys with 400 and stores nothing', async () => {
    const before = await rowCounts();
    for (const payload of [
      '{"name":"p","workflow_type":"sequential","steps":[],"__proto__":{"admin":true}}',
      '{"name":"p","workflow_type":"sequential","steps":[],"constructor":{"prototype":{"admin":true}}}',
      '{"name":"p","workflow_type":"sequential","steps":[{"name":"s","step_type":"noop","config":{"__proto__":{"x":1}}}]}',
    ]) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/workflows',
        headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
        payload,
      });
      expect(response.statusCode, payload).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
    expect(await rowCounts()).toEqual(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it(`${RUNS} malformed or hostile requests across all routes: no 5xx, nothing stored when refused`, async () => {
    const routes: Route[] = ctx.app.routeAccess
      .filter((route) => route.method !== 'HEAD' && route.method !== 'OPTIONS')
      .map(({ method, url, queryToken }) => ({ method, url, queryToken }));
    expect(routes.length).toBeGreaterThan(15);
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    const findings: string[] = [];
    const statuses = new Map<number, number>();
    /** Rows each table may gain: one per request that the service accepted as a creation. */
    const created = { workflows: 0, executions: 0, api_keys: 0, events: 0 };
    const before = await rowCounts();

    // Generated by fast-check from a fixed seed, then sent CONCURRENCY at a time: requests
    // spend most of their time waiting for Postgres and Redis, which overlaps well.
    const samples = fc.sample(requestArbitrary(routes), { numRuns: RUNS, seed: SEED });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < samples.length) {
        const generated = samples[next++] as FuzzRequest;
        const options = toInject(generated);
        const response = await ctx.app.inject(options);
        const status = response.statusCode;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const route = `${generated.route.method} ${generated.route.url}`;
        if (route === 'POST /workflows' && status === 201) created.workflows++;
        if (route === 'POST /workflows/:id/execute' && status === 202) created.executions++;
        if (route === 'POST /api-keys' && status === 201) created.api_keys++;
        if (route === 'POST /events' && status === 202) created.events++;
        const where = `${options.method} ${String(options.url).slice(0, 300)} body=${String(options.payload ?? '').slice(0, 3000)}`;
        if (status >= 500) {
          findings.push(`${status} ${where}: ${response.body.slice(0, 300)}`);
        } else if (
          status >= 400 &&
          !String(response.headers['content-type']).startsWith('application/problem+json')
        ) {
          findings.push(`${status} without problem+json: ${where}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    expect(findings).toEqual([]);
    const after = await rowCounts();
    // Nothing else creates rows in these tables (no DELETE targets an existing row), so any
    // difference would be a row stored by a refused request.
    expect(after).toEqual({
      ...before,
      workflows: before.workflows + created.workflows,
      executions: before.executions + created.executions,
      api_keys: before.api_keys + created.api_keys,
      events: before.events + created.events,
    });
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // The suite must reach the code behind validation too, not only bounce off it.
    const total = [...statuses.values()].reduce((sum, count) => sum + count, 0);
    expect(total).toBe(RUNS);
    const successes = [...statuses]
      .filter(([status]) => status < 300)
      .reduce((sum, [, count]) => sum + count, 0);
    expect(successes).toBeGreaterThan(RUNS / 20);
    expect(created.workflows).toBeGreaterThan(0);
    expect(statuses.get(401) ?? 0).toBeGreaterThan(0);
  }, 300_000);

  it('stores SQL and script fragments verbatim when they are valid strings', async () => {
    const fragment = fc
      .array(
        fc.constantFrom(
          ...SQL,
          ...SCRIPT.filter((value) => value !== '\u0000' && value !== '\ud800'),
        ),
        {
          minLength: 1,
          maxLength: 3,
        },
      )
      .map((parts) => parts.join(' ').trim())
      // `__proto__` as a key is refused on purpose (400, prototype poisoning): tested apart.
      .filter((value) => value.length > 0 && value.length <= 100 && value !== '__proto__');
    await fc.assert(
      fc.asyncProperty(fragment, fragment, fragment, async (name, text, value) => {
        const headers = { 'x-api-key': adminKey };
        const created = await ctx.app.inject({
          method: 'POST',
          url: '/workflows',
          headers,
          payload: {
            name,
            description: text,
            workflow_type: 'sequential',
            tags: [value],
            metadata: { [text]: value },
            steps: [{ name: text, step_type: 'noop', config: { note: value } }],
          },
        });
        expect(created.statusCode, created.body).toBe(201);
        const stored = await ctx.app.inject({
          method: 'GET',
          url: `/workflows/${created.json().id}`,
          headers,
        });
        const workflow = stored.json();
        expect(workflow.name).toBe(name);
        expect(workflow.description).toBe(text);
        expect(workflow.tags).toEqual([value]);
        expect(workflow.metadata).toEqual({ [text]: value });
        expect(workflow.steps[0].name).toBe(text);
        expect(workflow.steps[0].config).toEqual({ note: value });
        const search = await ctx.app.inject({
          method: 'GET',
          url: `/workflows?search=${encodeURIComponent(name)}&limit=100`,
          headers,
        });
        expect(search.statusCode).toBe(200);
        expect(search.json().items.map((item: { id: string }) => item.id)).toContain(
          created.json().id,
        );
        const started = await ctx.app.inject({
          method: 'POST',
          url: `/workflows/${created.json().id}/execute`,
          headers,
          payload: { input_data: { [name]: text } },
        });
        expect(started.statusCode).toBe(202);
        expect(started.json().input_data).toEqual({ [name]: text });
      }),
      { numRuns: 60, seed: SEED },
    );
  }, 120_000);
});
