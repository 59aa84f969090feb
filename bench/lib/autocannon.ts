import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { assertLoopback } from './util.js';

const require = createRequire(import.meta.url);
const AUTOCANNON = require.resolve('autocannon/autocannon.js');

export interface LoadOptions {
  url: string;
  method?: 'GET' | 'POST';
  body?: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}

export interface LoadResult {
  requestsPerSecond: number;
  requests: number;
  latencyMeanMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** CPU time this process spent per request while the load ran: with the server in this
   * process (and autocannon in its own), the server's cost of one request. Unlike requests per
   * second it hardly depends on what else the machine runs. */
  cpuMsPerRequest: number;
  /** Connection errors, timeouts and answers outside 2xx: the benchmark expects none. */
  errors: number;
  timeouts: number;
  non2xx: number;
}

interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { average: number; p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

/**
 * Runs autocannon in a child process, so the load generator does not share the event loop of
 * the server it measures (with 2 cores, server and generator each get one). Bounded by
 * `seconds`; loopback targets only.
 */
export async function autocannon(options: LoadOptions): Promise<LoadResult> {
  assertLoopback(options.url, 'the load target');
  const args = [
    AUTOCANNON,
    '--json',
    '--connections',
    String(options.connections),
    '--duration',
    String(options.seconds),
    '--timeout',
    '10',
    '--method',
    options.method ?? 'GET',
  ];
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    args.push('--headers', `${name}=${value}`);
  }
  if (options.body !== undefined) args.push('--body', options.body);
  args.push(options.url);
  const cpuBefore = process.cpuUsage();
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { timeout: (options.seconds + 30) * 1000, maxBuffer: 16 * 1024 * 1024 },
      (error, out, err) =>
        error ? reject(new Error(`autocannon failed: ${error.message}\n${err}`)) : resolve(out),
    );
  });
  const cpu = process.cpuUsage(cpuBefore);
  const result = JSON.parse(stdout) as AutocannonJson;
  return {
    cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(result.requests.total, 1),
    requestsPerSecond: result.requests.total / options.seconds,
    requests: result.requests.total,
    latencyMeanMs: result.latency.average,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
  };
}

/** Several rounds of one target as one result: totals and means, the worst p99. */
function combine(rounds: readonly LoadResult[], seconds: number): LoadResult {
  const sum = (pick: (r: LoadResult) => number) => rounds.reduce((acc, r) => acc + pick(r), 0);
  const requests = sum((r) => r.requests);
  return {
    requestsPerSecond: requests / seconds,
    requests,
    latencyMeanMs: sum((r) => r.latencyMeanMs * r.requests) / Math.max(requests, 1),
    latencyP50Ms: sum((r) => r.latencyP50Ms) / rounds.length,
    latencyP99Ms: Math.max(...rounds.map((r) => r.latencyP99Ms)),
    cpuMsPerRequest: sum((r) => r.cpuMsPerRequest * r.requests) / Math.max(requests, 1),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    non2xx: sum((r) => r.non2xx),
  };
}

/**
 * A figure and its baseline measured in alternation (warm-up of each, then A, B, A, B, ...),
 * so that a change in the machine's load during the run affects both alike. `seconds` is the
 * measured time of each side, split into `rounds`.
 */
export async function compareInterleaved(
  figure: Omit<LoadOptions, 'seconds'>,
  baseline: Omit<LoadOptions, 'seconds'>,
  options: { seconds: number; rounds: number; warmupSeconds: number },
): Promise<{ figure: LoadResult; baseline: LoadResult }> {
  await autocannon({ ...figure, seconds: options.warmupSeconds });
  await autocannon({ ...baseline, seconds: options.warmupSeconds });
  const perRound = options.seconds / options.rounds;
  const a: LoadResult[] = [];
  const b: LoadResult[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    a.push(await autocannon({ ...figure, seconds: perRound }));
    b.push(await autocannon({ ...baseline, seconds: perRound }));
  }
  return { figure: combine(a, options.seconds), baseline: combine(b, options.seconds) };
}
