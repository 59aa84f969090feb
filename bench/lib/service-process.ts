import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { projectRoot } from '../../src/project.js';
import type { BenchContext, BenchDatabase } from './context.js';
import { serviceEnvironment } from './service.js';
import { sleep, waitUntil } from './util.js';

/**
 * The service as its own process (src/server.ts through tsx, SERVICE_ROLE=all, `node
 * --expose-gc` with bench/lib/gc-preload.ts), on a database and a Redis prefix of its own,
 * driven over loopback HTTP: for the workloads that read its RSS, which must not include the
 * benchmark's own heap.
 */
export interface ServiceProcess {
  /** http://127.0.0.1:port */
  base: string;
  pid: number;
  databaseUrl: string;
  /** Full GC in the service, then its heap (from the process) and RSS (from /proc). */
  measure(): Promise<{ rss: number; heapUsed: number }>;
  /** SIGTERM, SIGKILL after 15 s; waits for the exit. */
  stop(): Promise<void>;
}

export const MIB = 1024 * 1024;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** VmRSS of a process from /proc/<pid>/status, in bytes (no GC: what it holds right now). */
export async function vmRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  if (kib === undefined) throw new Error('VmRSS not found');
  return Number(kib) * 1024;
}

/** Full GC in the child, then its heap (from the child) and RSS (from /proc). */
async function measureChild(child: ChildProcess): Promise<{ rss: number; heapUsed: number }> {
  const usage = await new Promise<NodeJS.MemoryUsage>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no memory answer from the service')), 10_000);
    child.once('message', (message: { usage: NodeJS.MemoryUsage }) => {
      clearTimeout(timer);
      resolve(message.usage);
    });
    child.send('bench:gc');
  });
  await sleep(200);
  return { rss: await vmRssBytes(child.pid as number), heapUsed: usage.heapUsed };
}

/** Another tree to run than this one (a previous release), on a database of its own. */
export interface OtherTree {
  root: string;
  database: BenchDatabase;
}

/** Starts the service process for `workload` (env `overrides` on top of the bench's) and waits
 * until it answers /health/ready. */
export async function startServiceProcess(
  context: BenchContext,
  workload: string,
  overrides: Record<string, string>,
  tree?: OtherTree,
): Promise<ServiceProcess> {
  const root = tree?.root ?? projectRoot;
  const database = tree?.database ?? (await context.database(workload));
  const port = await freePort();
  const env = serviceEnvironment(database, context.redisUrl, context.prefix(workload), {
    SERVICE_PORT: String(port),
    ...overrides,
  });
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      '--import',
      path.join(projectRoot, 'bench/lib/gc-preload.ts'),
      path.join(root, 'src/server.ts'),
    ],
    { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
  );
  context.track(child);
  // Keep only the end of the log, for a failure message.
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.connected) child.disconnect();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'the service process to be ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`service exited:\n${tail}`);
        const response = await fetch(`${base}/health/ready`).catch(() => null);
        return response?.status === 200;
      },
      60_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    base,
    pid: child.pid as number,
    databaseUrl: database.url,
    measure: () => measureChild(child),
    stop,
  };
}

/** A request to the service; throws unless it answers `expected`. Returns the parsed body. */
export async function callService<T>(
  base: string,
  method: 'GET' | 'POST',
  route: string,
  expected: number,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${base}${route}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status !== expected) {
    throw new Error(`${method} ${route} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return JSON.parse(text) as T;
}

/** POST /workflows; the new workflow's id. */
export async function createWorkflowOver(base: string, body: unknown): Promise<string> {
  return (await callService<{ id: string }>(base, 'POST', '/workflows', 201, body)).id;
}

/** POST /workflows/{id}/execute; the new execution's id. */
export async function executeOver(
  base: string,
  workflowId: string,
  input: Record<string, unknown> = {},
): Promise<string> {
  const answer = await callService<{ id: string }>(
    base,
    'POST',
    `/workflows/${workflowId}/execute`,
    202,
    { input_data: input },
  );
  return answer.id;
}
