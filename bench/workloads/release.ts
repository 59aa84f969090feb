import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../../src/project.js';
import { count, timedBatch } from '../lib/batches.js';
import type { BenchContext } from '../lib/context.js';
import {
  createWorkflowOver,
  type ServiceProcess,
  startServiceProcess,
} from '../lib/service-process.js';

/**
 * The engine's hot path against the previous release, in the same run: the release's tree is
 * checked out beside this one (`git worktree`, sharing node_modules) and runs as its own
 * service process on a database it migrates itself; this tree runs as another. Both run the
 * same batches of a 10-step `noop` chain over HTTP, alternately, so drift on the shared
 * machine falls on both. What the history of issue 16 may cost (target >= 0.95) shows here.
 */

export interface ReleasePlan {
  /** A commit or tag: BENCH_RELEASE_REF, else the last release that landed. */
  ref: string;
  executions: number;
  rounds: number;
}

export interface ReleaseFigures {
  ref: string;
  currentStepsPerSecond: number;
  releaseStepsPerSecond: number;
  rounds: Array<{ current: number; release: number }>;
}

const STEPS = 10;

const chain = (name: string) => ({
  name,
  workflow_type: 'sequential',
  steps: Array.from({ length: STEPS }, (_, index) => ({
    id: `s${index}`,
    name: `s${index}`,
    step_type: 'noop',
  })),
});

/** Checks the release out beside this tree; its dependencies are this tree's. */
async function checkout(ref: string): Promise<string> {
  const where = await mkdtemp(path.join(tmpdir(), 'wf-release-'));
  await rm(where, { recursive: true });
  execFileSync('git', ['worktree', 'add', '--detach', where, ref], {
    cwd: projectRoot,
    stdio: 'ignore',
  });
  if (!existsSync(path.join(where, 'node_modules'))) {
    symlinkSync(path.join(projectRoot, 'node_modules'), path.join(where, 'node_modules'));
  }
  return where;
}

function removeCheckout(where: string): void {
  execFileSync('git', ['worktree', 'remove', '--force', where], {
    cwd: projectRoot,
    stdio: 'ignore',
  });
}

/** Steps per second of one batch, from the first start to the last end in the database. */
async function batch(service: ServiceProcess, db: pg.Client, executions: number, round: number) {
  const workflowId = await createWorkflowOver(service.base, chain(`chain ${round}`));
  const seconds = await timedBatch(service, db, workflowId, executions);
  const steps = await count(
    db,
    `SELECT count(*)::int AS n FROM step_executions s
       JOIN workflow_executions e ON e.id = s.execution_id WHERE e.workflow_id = $1`,
    [workflowId],
  );
  return steps / seconds;
}

export async function measureRelease(
  context: BenchContext,
  plan: ReleasePlan,
  log: (message: string) => void,
): Promise<ReleaseFigures> {
  const where = await checkout(plan.ref);
  const services: ServiceProcess[] = [];
  const clients: pg.Client[] = [];
  try {
    const release = await startServiceProcess(
      context,
      'release',
      {},
      {
        root: where,
        database: await context.emptyDatabase('release'),
      },
    );
    services.push(release);
    const current = await startServiceProcess(context, 'current', {});
    services.push(current);
    for (const service of services) {
      const client = new pg.Client({ connectionString: service.databaseUrl });
      await client.connect();
      clients.push(client);
    }
    const [releaseDb, currentDb] = clients as [pg.Client, pg.Client];
    // A warm-up batch each: JIT, caches and the first connections are not what is compared.
    await batch(release, releaseDb, 50, 0);
    await batch(current, currentDb, 50, 0);
    const rounds: ReleaseFigures['rounds'] = [];
    for (let round = 1; round <= plan.rounds; round += 1) {
      // Which goes first alternates, so neither always runs on a warmer machine.
      const first = round % 2 === 1;
      const a = first
        ? await batch(release, releaseDb, plan.executions, round)
        : await batch(current, currentDb, plan.executions, round);
      const b = first
        ? await batch(current, currentDb, plan.executions, round)
        : await batch(release, releaseDb, plan.executions, round);
      const entry = first ? { release: a, current: b } : { current: a, release: b };
      rounds.push(entry);
      log(
        `  round ${round}: current ${entry.current.toFixed(0)} steps/s, release ${entry.release.toFixed(0)} steps/s`,
      );
    }
    const total = (key: 'current' | 'release') =>
      rounds.reduce((sum, entry) => sum + entry[key], 0) / rounds.length;
    return {
      ref: plan.ref,
      currentStepsPerSecond: total('current'),
      releaseStepsPerSecond: total('release'),
      rounds,
    };
  } finally {
    for (const client of clients) await client.end();
    for (const service of services) await service.stop();
    removeCheckout(where);
  }
}
