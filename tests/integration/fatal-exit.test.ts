import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  type TestDatabase,
  testEnvironment,
} from '../helpers/test-app.js';

const GRACE_MS = 3000;
let database: TestDatabase;
const prefix = `t${randomBytes(5).toString('hex')}`;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await deleteRedisPrefix(prefix);
  await database?.drop();
});

/** Starts the service (all roles) with the trigger preloaded, fires it once it serves, and
 * reports how the process ended and what it logged. */
async function crash(trigger: 'exception' | 'rejection') {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      path.join(projectRoot, 'tests/helpers/fatal-trigger.ts'),
      path.join(projectRoot, 'src/server.ts'),
    ],
    {
      cwd: projectRoot,
      env: {
        ...process.env,
        ...testEnvironment(database, prefix, {
          LOG_LEVEL: 'info',
          SERVICE_PORT: '0',
          SERVICE_HOST: '127.0.0.1',
          SHUTDOWN_GRACE_MS: String(GRACE_MS),
        }),
        FATAL_TRIGGER: trigger,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const deadline = Date.now() + 60_000;
    while (!log.includes('engine started')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`not ready:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const firedAt = Date.now();
    child.kill('SIGUSR2');
    const code = await Promise.race([
      exited,
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), GRACE_MS + 20_000)),
    ]);
    return { code, ms: Date.now() - firedAt, log };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describe('a fatal error ends the process so its supervisor restarts it', () => {
  for (const trigger of ['exception', 'rejection'] as const) {
    const what = trigger === 'exception' ? 'uncaught exception' : 'unhandled rejection';
    it(`an ${what}: logged at fatal, exit code 1 within the grace period`, async () => {
      const { code, ms, log } = await crash(trigger);
      expect(code, log).toBe(1);
      const fatal = log
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map(
          (line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } },
        )
        .find((entry) => entry.level === 60);
      expect(fatal?.msg, log).toContain('uncaught error');
      expect(fatal?.err?.message).toContain(`an ${what}`);
      // Drained and gone within the grace period (and the time a busy machine adds).
      expect(ms).toBeLessThan(GRACE_MS + 15_000);
    }, 120_000);
  }
});
