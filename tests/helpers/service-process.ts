import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../src/project.js';

/** A real service process (src/server.ts through tsx), for tests that kill processes. */
export interface ServiceProcess {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Everything it logged, for diagnosing a failure. */
  output(): string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts the service with `env` and waits until its log line `readyLine` appears (bounded). */
export async function startServiceProcess(
  env: Record<string, string>,
  readyLine = 'engine started',
  timeoutMs = 30_000,
): Promise<ServiceProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'src/server.ts')],
    {
      cwd: projectRoot,
      // Readiness is read from the log, so the process logs at least at info level.
      env: {
        ...process.env,
        SERVICE_PORT: '0',
        SERVICE_HOST: '127.0.0.1',
        ...env,
        LOG_LEVEL: ['trace', 'debug'].includes(env.LOG_LEVEL ?? '')
          ? (env.LOG_LEVEL as string)
          : 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    log += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const deadline = Date.now() + timeoutMs;
  while (!log.includes(readyLine)) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service process did not become ready:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    child,
    exited,
    output: () => log,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
