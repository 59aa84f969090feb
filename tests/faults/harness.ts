import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, expect, inject } from 'vitest';
// The bounded-concurrency loop the benchmarks use, shared rather than copied.
import { runPool } from '../../bench/lib/util.js';
import { projectRoot } from '../../src/project.js';
import { ensureDatabase } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { freePort, PrivatePostgres, PrivateRedis } from '../helpers/private-servers.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { createTestDatabase, deleteRedisPrefix, type TestDatabase } from '../helpers/test-app.js';
import { type Figures, recordFigures } from './figures.js';
import { checkInvariants, type InvariantReport, installAudit } from './invariants.js';
import { SideEffectServer, type SideEffectServerOptions } from './side-effect-server.js';

export { runPool };

/**
 * Shared machinery of the fault scenarios: their setup and teardown, real service processes
 * (tsx), an HTTP client on loopback, a bounded-concurrency load driver and the figures file.
 * Every scenario is bounded in time and kills everything it started, even on failure.
 */

// A last resort: children die with this process even when afterAll never runs.
const live = new Set<ServiceProcess>();
process.once('exit', () => {
  for (const service of live) {
    if (service.child.exitCode === null && service.child.signalCode === null) {
      service.child.kill('SIGKILL');
    }
  }
});

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const randomBetween = (min: number, max: number) => min + Math.random() * (max - min);

/** The environment every service process of a scenario shares. */
export function serviceEnv(
  stack: { databaseUrl: string; redisUrl: string; prefix: string },
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: stack.databaseUrl,
    REDIS_URL: stack.redisUrl,
    REDIS_PREFIX: stack.prefix,
    LOG_LEVEL: 'info',
    HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
    // A killed or stalled worker loses its job to another within seconds.
    JOB_LOCK_MS: '2000',
    SWEEP_INTERVAL_MS: '500',
    SWEEP_STALE_AFTER_MS: '3000',
    WORKER_CONCURRENCY: '10',
    SHUTDOWN_GRACE_MS: '5000',
    ...overrides,
  };
}

/** The service processes of one scenario. */
export class Fleet {
  readonly processes: ServiceProcess[] = [];
  /** Processes still booting: killAll waits for them (startServiceProcess bounds the wait). */
  private readonly starting = new Set<Promise<ServiceProcess>>();

  constructor(private readonly env: Record<string, string>) {}

  private async start(env: Record<string, string>, readyLine: string): Promise<ServiceProcess> {
    const starting = startServiceProcess({ ...this.env, ...env }, readyLine, 90_000);
    this.starting.add(starting);
    try {
      const service = await starting;
      this.processes.push(service);
      live.add(service);
      void service.exited.then(() => live.delete(service));
      return service;
    } finally {
      this.starting.delete(starting);
    }
  }

  /** A worker process (SERVICE_ROLE=worker), once its engine runs. */
  async worker(overrides: Record<string, string> = {}): Promise<ServiceProcess> {
    return this.start({ SERVICE_ROLE: 'worker', ...overrides }, 'engine started');
  }

  /** A process serving the API on `port` (role api unless overridden), once it is ready. */
  async api(port: number, overrides: Record<string, string> = {}): Promise<ServiceProcess> {
    const role = overrides.SERVICE_ROLE ?? 'api';
    const service = await this.start(
      { SERVICE_ROLE: role, SERVICE_PORT: String(port), ...overrides },
      role === 'api' ? 'workflow service listening' : 'engine started',
    );
    await waitReady(`http://127.0.0.1:${port}`, 90_000);
    return service;
  }

  /** SIGKILLs every process still running, including those still booting. */
  async killAll(): Promise<void> {
    await Promise.allSettled([...this.starting]);
    await Promise.all(this.processes.map((service) => service.kill('SIGKILL')));
  }

  /** Writes every process's log under test-results/fault-logs/<scenario>/. */
  saveLogs(scenario: string): string {
    const directory = path.join(projectRoot, 'test-results', 'fault-logs', scenario);
    mkdirSync(directory, { recursive: true });
    this.processes.forEach((service, index) => {
      writeFileSync(path.join(directory, `process-${index}.log`), service.output());
    });
    return directory;
  }
}

/** What sets one scenario's stack apart from the others'. */
export interface FaultScenarioOptions {
  /** The start of the Redis prefix, so that keys left behind tell which scenario wrote them. */
  prefixLetters: string;
  /** Environment of every service process, over serviceEnv's. */
  env?: Record<string, string>;
  sideEffects?: SideEffectServerOptions;
  /** A redis-server of the scenario's own, for scenarios that kill Redis: never the shared one. */
  privateRedis?: boolean;
  /** A Postgres cluster of the scenario's own, for scenarios that stop Postgres. */
  privatePostgres?: boolean;
  /** Runs first in the teardown, before the logs are saved and the processes killed. */
  beforeTeardown?: () => void;
}

/** The stack of one scenario, set up before its test: read it inside the test. */
export interface FaultScenario {
  /** A clone of the migrated template, or a database on the private cluster. */
  readonly databaseUrl: string;
  readonly fleet: Fleet;
  /** The outside world the http steps call. */
  readonly server: SideEffectServer;
  /** Only with the option `privateRedis`. */
  readonly privateRedis: PrivateRedis;
  /** Only with the option `privatePostgres`. */
  readonly privatePostgres: PrivatePostgres;
  /** The invariants, over the scenario's database and the side effects its server saw. */
  checkInvariants(accepted: Iterable<string>, apiUrl: string): Promise<InvariantReport>;
  /** Records the figures every scenario reports, followed by its own. */
  recordFigures(
    report: InvariantReport,
    run: { started: number; kills: number; restarts: number },
    own: Record<string, number | string | boolean>,
  ): void;
}

function setUp<T>(value: T | undefined, what: string): T {
  if (value === undefined) {
    throw new Error(`no ${what}: read it inside the test, of a scenario that asks for it`);
  }
  return value;
}

/**
 * Sets up the stack of the current test file's scenario before its test (a database with the
 * audit triggers, a Redis prefix, the side-effect server and a fleet that has started nothing
 * yet), saves the fleet's logs when the test fails and tears everything down after it.
 */
export function useFaultScenario(name: string, options: FaultScenarioOptions): FaultScenario {
  const server = new SideEffectServer(options.sideEffects);
  let privateRedis: PrivateRedis | undefined;
  let privatePostgres: PrivatePostgres | undefined;
  let database: TestDatabase | undefined;
  let databaseUrl: string | undefined;
  let prefix = '';
  let fleet: Fleet | undefined;

  beforeAll(async () => {
    if (options.privateRedis) privateRedis = await PrivateRedis.start();
    if (options.privatePostgres) {
      privatePostgres = await PrivatePostgres.start();
      databaseUrl = privatePostgres.url();
      await ensureDatabase(databaseUrl);
      await migrate(databaseUrl, pino({ level: 'silent' }));
    } else {
      database = await createTestDatabase();
      databaseUrl = database.url;
    }
    prefix = `${options.prefixLetters}${randomBytes(4).toString('hex')}`;
    await installAudit(databaseUrl);
    await server.listen();
    fleet = new Fleet(
      serviceEnv(
        { databaseUrl, redisUrl: privateRedis?.url ?? inject('redisUrl'), prefix },
        options.env,
      ),
    );
  });

  beforeEach((test) => {
    test.onTestFailed(() => {
      if (fleet) console.log(`logs: ${fleet.saveLogs(name)}`);
    });
  });

  afterAll(async () => {
    options.beforeTeardown?.();
    if (process.env.FAULT_SAVE_LOGS) fleet?.saveLogs(name);
    await fleet?.killAll();
    await server.close();
    if (options.privateRedis) await privateRedis?.stop();
    else if (prefix) await deleteRedisPrefix(prefix);
    await database?.drop();
    await privatePostgres?.destroy();
  });

  return {
    server,
    get databaseUrl() {
      return setUp(databaseUrl, 'database');
    },
    get fleet() {
      return setUp(fleet, 'fleet');
    },
    get privateRedis() {
      return setUp(privateRedis, 'private Redis');
    },
    get privatePostgres() {
      return setUp(privatePostgres, 'private Postgres');
    },
    checkInvariants(accepted, apiUrl) {
      return checkInvariants({
        databaseUrl: setUp(databaseUrl, 'database'),
        accepted,
        sideEffects: { calls: server.calls, pathOf: sideEffectPath },
        apiUrl,
      });
    },
    recordFigures(report, run, own) {
      const figures: Figures = {
        executions: report.executions,
        kills: run.kills,
        restarts: run.restarts,
        rerun_attempts: report.rerunAttempts,
        lost: report.lost,
        duplicated_completions: report.duplicatedCompletions,
        seconds: Math.round((Date.now() - run.started) / 1000),
        ...own,
      };
      recordFigures(name, figures);
    },
  };
}

export function alive(service: ServiceProcess): boolean {
  return service.child.exitCode === null && service.child.signalCode === null;
}

/** A worker process of a scenario that kills them, and its replacement once started. */
export interface WorkerSlot {
  process: ServiceProcess | undefined;
  readyAt: number;
  restarting?: Promise<void>;
}

/**
 * Every 1-3 s, SIGKILLs a random worker and starts a new one in its place, `kills` times.
 * Only a worker that has run for at least a second is a candidate, so every kill hits one
 * that has taken jobs (boot takes seconds; killing one still booting would interrupt
 * nothing). The last replacements may still be starting: await the slots' `restarting`
 * before reading `restarts` of the returned counts, which they update.
 */
export async function killWorkersRepeatedly(
  fleet: Fleet,
  slots: WorkerSlot[],
  kills: number,
): Promise<{ kills: number; restarts: number }> {
  const counts = { kills: 0, restarts: 0 };
  const seasoned = () =>
    slots.filter(
      (slot) => slot.process && alive(slot.process) && Date.now() - slot.readyAt >= 1000,
    );
  while (counts.kills < kills) {
    await sleep(randomBetween(1000, 3000));
    const giveUpAt = Date.now() + 90_000;
    while (seasoned().length === 0) {
      if (Date.now() > giveUpAt) throw new Error('no worker came back up within 90 s');
      await sleep(100);
    }
    const candidates = seasoned();
    const slot = candidates[Math.floor(Math.random() * candidates.length)];
    if (!slot?.process) continue;
    await slot.process.kill('SIGKILL');
    counts.kills += 1;
    slot.process = undefined;
    slot.restarting = fleet.worker().then((process) => {
      slot.process = process;
      slot.readyAt = Date.now();
      counts.restarts += 1;
    });
  }
  return counts;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: unknown;
  ms: number;
}

/** One request on loopback with a hard time limit; throws on network errors and timeouts. */
export async function request(
  url: string,
  init: {
    method?: string;
    body?: unknown;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer> {
  const started = performance.now();
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...init.headers,
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    signal: AbortSignal.timeout(init.timeoutMs ?? 30_000),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return {
    status: response.status,
    headers: response.headers,
    body,
    ms: performance.now() - started,
  };
}

/** Waits until /health/ready answers 200. */
export async function waitReady(baseUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await request(`${baseUrl}/health/ready`, { timeoutMs: 5000 })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${baseUrl} did not become ready`);
    await sleep(200);
  }
}

export async function createWorkflow(
  baseUrl: string,
  body: Record<string, unknown>,
): Promise<string> {
  const answer = await request(`${baseUrl}/workflows`, { method: 'POST', body });
  if (answer.status !== 201) {
    throw new Error(
      `creating the workflow answered ${answer.status}: ${JSON.stringify(answer.body)}`,
    );
  }
  return (answer.body as { id: string }).id;
}

/** An http step that calls the side-effect server at /<execution id>/<step id>. */
export function httpStep(sideEffectUrl: string, id: string, dependencies?: string[]) {
  return {
    id,
    name: id,
    step_type: 'http',
    config: { url: `{% '${sideEffectUrl}/' & execution.id & '/${id}' %}` },
    timeout_seconds: 60,
    retry_count: 5,
    retry_backoff: { type: 'fixed', delay_ms: 200 },
    ...(dependencies ? { dependencies } : {}),
  };
}

/** Ten http steps: one, eight in parallel after it, one joining them. */
export function fanOutWorkflow(
  sideEffectUrl: string,
  name = 'fan-out fan-in',
): Record<string, unknown> {
  const branches = Array.from({ length: 8 }, (_, index) => `b${index + 1}`);
  return {
    name,
    workflow_type: 'parallel',
    steps: [
      httpStep(sideEffectUrl, 'start'),
      ...branches.map((id) => httpStep(sideEffectUrl, id, ['start'])),
      httpStep(sideEffectUrl, 'join', branches),
    ],
  };
}

/** The side-effect path of a run of the workflows here (every step is an http step; a
 * for_each item's path ends with its index, as forEachWorkflow's url does, and the for_each
 * step's own run calls nothing). */
export function sideEffectPath(run: {
  execution_id: string;
  step_id: string;
  item_index: number;
  item_count: number | null;
}): string | null {
  if (run.item_index < 0 && run.item_count !== null) return null;
  const item = run.item_index >= 0 ? `/${run.item_index}` : '';
  return `/${run.execution_id}/${run.step_id}${item}`;
}

/** One http step over `items` items (`for_each_concurrency` of them at once), then one more. */
export function forEachWorkflow(
  sideEffectUrl: string,
  items: number,
  concurrency: number,
): Record<string, unknown> {
  const each = httpStep(sideEffectUrl, 'each');
  return {
    name: `for_each over ${items}`,
    workflow_type: 'sequential',
    steps: [
      {
        ...each,
        config: { url: `{% '${sideEffectUrl}/' & execution.id & '/each/' & $string(index) %}` },
        for_each: `[0..${items - 1}]`,
        for_each_concurrency: concurrency,
      },
      httpStep(sideEffectUrl, 'after', ['each']),
    ],
  };
}

export interface SubmitReport {
  /** Execution ids answered 2xx. */
  accepted: string[];
  /** Answers by status code ('error' for network errors and timeouts). */
  answers: Record<string, number>;
  /** Requests that never got a 2xx. */
  failed: number;
}

/**
 * Submits `count` executions of a workflow to the API at `baseUrl()` (a function, so a
 * restarted API may move). Request i starts no earlier than i * spreadMs / count. With
 * `retryForMs`, each request carries an Idempotency-Key and is repeated (honouring
 * Retry-After) until it gets a 2xx or the time is up; without, one try each.
 */
export async function submitExecutions(options: {
  baseUrl: () => string;
  workflowId: string;
  count: number;
  concurrency: number;
  spreadMs?: number;
  retryForMs?: number;
  keyPrefix?: string;
}): Promise<SubmitReport> {
  const report: SubmitReport = { accepted: [], answers: {}, failed: 0 };
  const count = (key: string) => {
    report.answers[key] = (report.answers[key] ?? 0) + 1;
  };
  const started = Date.now();
  await runPool(options.count, options.concurrency, async (index) => {
    const notBefore = started + (index * (options.spreadMs ?? 0)) / options.count;
    if (notBefore > Date.now()) await sleep(notBefore - Date.now());
    const giveUpAt = Date.now() + (options.retryForMs ?? 0);
    const headers: Record<string, string> =
      options.retryForMs === undefined
        ? {}
        : { 'idempotency-key': `${options.keyPrefix ?? 'fault'}-${index}` };
    for (;;) {
      let retryAfterMs = 500;
      try {
        const answer = await request(
          `${options.baseUrl()}/workflows/${options.workflowId}/execute`,
          { method: 'POST', body: { input_data: { index } }, headers, timeoutMs: 30_000 },
        );
        count(String(answer.status));
        if (answer.status >= 200 && answer.status < 300) {
          report.accepted.push((answer.body as { id: string }).id);
          return;
        }
        const retryAfter = Number(answer.headers.get('retry-after'));
        if (Number.isFinite(retryAfter) && retryAfter > 0)
          retryAfterMs = Math.min(retryAfter * 1000, 2000);
      } catch {
        count('error');
      }
      if (Date.now() + retryAfterMs > giveUpAt) {
        report.failed += 1;
        return;
      }
      await sleep(retryAfterMs);
    }
  });
  // Replays of one key answer 200 with the same execution.
  report.accepted = [...new Set(report.accepted)];
  return report;
}

/** An API process on a free port and two workers behind it, as the kill scenarios use them. */
export async function apiAndTwoWorkers(
  fleet: Fleet,
): Promise<{ apiUrl: string; slots: WorkerSlot[] }> {
  const port = await freePort();
  const workers = await Promise.all([fleet.api(port).then(() => fleet.worker()), fleet.worker()]);
  return {
    apiUrl: `http://127.0.0.1:${port}`,
    slots: workers.map((process) => ({ process, readyAt: Date.now() })),
  };
}

/** Submits `count` executions, 8 at a time, one try each; every one must be accepted. */
export async function submitAll(
  apiUrl: string,
  workflowId: string,
  count: number,
): Promise<SubmitReport> {
  const submitted = await submitExecutions({
    baseUrl: () => apiUrl,
    workflowId,
    count,
    concurrency: 8,
  });
  expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);
  return submitted;
}
