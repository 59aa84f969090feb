import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../../src/project.js';
import type { BenchContext } from '../lib/context.js';
import { serviceEnvironment } from '../lib/service.js';
import { runPool, sleep, waitUntil } from '../lib/util.js';

/**
 * The service as its own process (src/server.ts through tsx, SERVICE_ROLE=all, LOG_LEVEL info
 * as deployed), driven over loopback HTTP: executions of one-step noop workflows (WORKFLOWS of
 * them, round robin, so starts do not all queue on one workflow row), `concurrency` requests in
 * flight. Every `every` executions the benchmark waits until all started executions have
 * completed, asks the process for a full GC (bench/lib/gc-preload.ts, node --expose-gc) and
 * reads VmRSS from /proc/<pid>/status. It stops at `executions`, or earlier at a checkpoint
 * when the next batch would end past `deadline` (performance.now() ms, judged by how long the
 * last batch took), and says so.
 */
export interface MemorySample {
  executions: number;
  rssMiB: number;
  heapUsedMiB: number;
  seconds: number;
}

export interface MemoryFigures {
  samples: MemorySample[];
  executionsPerSecond: number;
  /** The time budget ran out before `executions`. */
  stoppedEarly: boolean;
  target: number;
}

const WORKFLOWS = 4;

const MIB = 1024 * 1024;

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

async function vmRssBytes(pid: number): Promise<number> {
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

export async function measureMemory(
  context: BenchContext,
  options: { executions: number; every: number; concurrency: number; deadline: number },
  log: (message: string) => void,
): Promise<MemoryFigures> {
  const database = await context.database('memory');
  const port = await freePort();
  const env = serviceEnvironment(database, context.redisUrl, context.prefix('memory'), {
    SERVICE_PORT: String(port),
    LOG_LEVEL: 'info',
  });
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      '--import',
      path.join(projectRoot, 'bench/lib/gc-preload.ts'),
      path.join(projectRoot, 'src/server.ts'),
    ],
    { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
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
  const base = `http://127.0.0.1:${port}`;
  const db = new pg.Client({ connectionString: database.url });
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
    await db.connect();
    const workflowIds: string[] = [];
    for (let i = 0; i < WORKFLOWS; i += 1) {
      const created = await fetch(`${base}/workflows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: `bench memory ${i + 1}`,
          workflow_type: 'sequential',
          steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
        }),
      });
      if (created.status !== 201) throw new Error(`creating a workflow: ${created.status}`);
      workflowIds.push(((await created.json()) as { id: string }).id);
    }
    const completed = async () => {
      const { rows } = await db.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM workflow_executions WHERE status = 'completed'`,
      );
      return rows[0]?.count ?? 0;
    };
    const samples: MemorySample[] = [];
    const started = performance.now();
    let done = 0;
    let stoppedEarly = false;
    let lastBatchMs = 0;
    while (done < options.executions) {
      if (done > 0 && performance.now() + lastBatchMs > options.deadline) {
        stoppedEarly = true;
        break;
      }
      const batchStarted = performance.now();
      const checkpoint = Math.min(done + options.every, options.executions);
      await runPool(checkpoint - done, options.concurrency, async (index) => {
        const workflowId = workflowIds[(done + index) % WORKFLOWS] as string;
        const response = await fetch(`${base}/workflows/${workflowId}/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ input_data: { n: done + index } }),
        });
        await response.arrayBuffer();
        if (response.status !== 202) throw new Error(`execute answered ${response.status}`);
      });
      done = checkpoint;
      await waitUntil(
        `${checkpoint} completed executions`,
        async () => (await completed()) >= checkpoint,
        300_000,
        200,
      );
      lastBatchMs = performance.now() - batchStarted;
      const { rss, heapUsed } = await measureChild(child);
      const seconds = (performance.now() - started) / 1000;
      samples.push({
        executions: checkpoint,
        rssMiB: rss / MIB,
        heapUsedMiB: heapUsed / MIB,
        seconds,
      });
      if (
        checkpoint === options.every ||
        checkpoint % (5 * options.every) === 0 ||
        checkpoint === options.executions
      ) {
        log(
          `  after ${checkpoint} executions (${seconds.toFixed(0)} s): RSS ${(rss / MIB).toFixed(1)} MiB, heap ${(heapUsed / MIB).toFixed(1)} MiB`,
        );
      }
    }
    const last = samples[samples.length - 1] as MemorySample;
    if (stoppedEarly) {
      log(
        `  stopped after ${last.executions} executions (time budget): RSS ${last.rssMiB.toFixed(1)} MiB, heap ${last.heapUsedMiB.toFixed(1)} MiB`,
      );
    }
    return {
      samples,
      executionsPerSecond: last.executions / last.seconds,
      stoppedEarly,
      target: options.executions,
    };
  } finally {
    await db.end().catch(() => {});
    if (child.exitCode === null) {
      child.disconnect();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  }
}
