import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';

/** Whether a Postgres server answers a query at `url` (within 2 s to connect). */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Postgres and Redis servers private to one test file, on their own loopback ports and data
 * directories, for tests that kill or restart servers. Never the shared 5432/6379 servers.
 */

const run = promisify(execFile);

/** Synchronous last-resort cleanups, run if this process exits without its afterAll. */
const onExit = new Set<() => void>();
process.once('exit', () => {
  for (const cleanup of onExit) {
    try {
      cleanup();
    } catch {
      // best effort
    }
  }
});

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A redis-server child without persistence: a restart starts empty (everything lost). */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.launch();
    return redis;
  }

  private async launch(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        os.tmpdir(),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-20_000);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-20_000);
    });
    this.child = child;
    const cleanup = () => child.kill('SIGKILL');
    onExit.add(cleanup);
    void new Promise((resolve) => child.once('exit', resolve)).then(() => onExit.delete(cleanup));
    await waitFor(`redis-server on port ${this.port}`, 15_000, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited:\n${this.log}`);
      const client = new Redis(this.url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        return (await client.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        client.disconnect();
      }
    });
  }

  /** SIGKILLs the server (nothing is saved) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills it and starts a fresh, empty server on the same port after `downMs`. */
  async restart(downMs = 0): Promise<void> {
    await this.kill();
    if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}

/** The bin directory of the newest installed PostgreSQL (Debian layout), or PG_BIN_DIR. */
function postgresBinDir(): string {
  const given = process.env.PG_BIN_DIR;
  if (given) return given;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(path.join(root, name, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'no PostgreSQL server binaries found under /usr/lib/postgresql; set PG_BIN_DIR',
    );
  }
  return path.join(root, versions[0] as string, 'bin');
}

/**
 * A throwaway Postgres cluster (initdb + pg_ctl) in a temporary directory. initdb and postgres
 * refuse to run as root, so as root they run as the `postgres` OS user, which owns the directory.
 */
export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly directory: string,
    private readonly bin: string,
    private readonly asUser: string[],
  ) {}

  /** A database URL on this cluster (the service creates the database if missing). */
  url(database = 'workflow_service'): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private get dataDir(): string {
    return path.join(this.directory, 'data');
  }

  static async start(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    const directory = mkdtempSync(path.join(os.tmpdir(), 'wf-fault-pg-'));
    const root = process.getuid?.() === 0;
    if (root) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: group } = await run('id', ['-g', 'postgres']);
      chownSync(directory, Number(stdout.trim()), Number(group.trim()));
      chmodSync(directory, 0o700);
    }
    const cluster = new PrivatePostgres(
      await freePort(),
      directory,
      bin,
      root ? ['runuser', '-u', 'postgres', '--'] : [],
    );
    const cleanup = () => cluster.destroySync();
    onExit.add(cleanup);
    cluster.forget = () => onExit.delete(cleanup);
    try {
      await cluster.initialise();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  private forget: () => void = () => {};

  private async initialise(): Promise<void> {
    await this.exec('initdb', [
      '-D',
      this.dataDir,
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
      '--no-instructions',
    ]);
    await this.begin();
  }

  private async exec(tool: string, args: string[]): Promise<string> {
    const [command, ...prefix] = [...this.asUser, path.join(this.bin, tool)];
    try {
      const { stdout } = await run(command as string, [...prefix, ...args], { timeout: 60_000 });
      return stdout;
    } catch (error) {
      const details = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${tool} failed: ${details.message}\n${details.stdout}\n${details.stderr}`);
    }
  }

  /**
   * Starts the server and waits until it accepts queries. fsync=off only matters when the
   * operating system crashes: an immediate-mode stop (what the tests do) loses nothing that
   * was committed, since committed WAL is already written to the kernel.
   */
  async begin(): Promise<void> {
    await this.exec('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      path.join(this.directory, 'server.log'),
      '-o',
      `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${this.directory} -c max_connections=200 -c fsync=off`,
      '-w',
      '-t',
      '60',
      'start',
    ]);
    await waitFor(`postgres on port ${this.port}`, 30_000, () =>
      postgresAnswers(this.url('postgres')),
    );
  }

  /** Stops the server in immediate mode: like a crash, recovery replays the WAL on start. */
  async stopImmediate(): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
  }

  /** Stops the cluster (if running) and deletes its directory. */
  async destroy(): Promise<void> {
    await this.exec('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']).catch(
      () => {},
    );
    rmSync(this.directory, { recursive: true, force: true });
    this.forget();
  }

  /** destroy() for an exit handler, where nothing asynchronous runs any more. */
  private destroySync(): void {
    const [command, ...prefix] = [...this.asUser, path.join(this.bin, 'pg_ctl')];
    try {
      execFileSync(command as string, [...prefix, '-D', this.dataDir, '-m', 'immediate', 'stop'], {
        stdio: 'ignore',
        timeout: 10_000,
      });
    } catch {
      // not running
    }
    rmSync(this.directory, { recursive: true, force: true });
  }
}
