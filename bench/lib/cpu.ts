import { readFile } from 'node:fs/promises';
import type pg from 'pg';

/**
 * CPU time, which unlike wall time hardly depends on what else the machine runs: this process
 * (the engine or the reference runs in it) and the Postgres backends serving its database.
 */
const CLOCK_TICKS_PER_SECOND = 100;

export async function processCpuMs(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export class CpuMeter {
  private node = process.cpuUsage();
  private backends = new Map<number, number>();

  constructor(
    private readonly admin: pg.Pool,
    private readonly database: string,
  ) {}

  private async backendPids(): Promise<number[]> {
    const { rows } = await this.admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = $1',
      [this.database],
    );
    return rows.map((row) => row.pid);
  }

  async start(): Promise<void> {
    this.node = process.cpuUsage();
    this.backends = new Map();
    for (const pid of await this.backendPids()) this.backends.set(pid, await processCpuMs(pid));
  }

  /** Milliseconds of CPU since start(): this process, and the database's backends. */
  async stop(): Promise<{ nodeMs: number; postgresMs: number }> {
    const usage = process.cpuUsage(this.node);
    let postgresMs = 0;
    for (const pid of await this.backendPids()) {
      postgresMs += (await processCpuMs(pid)) - (this.backends.get(pid) ?? 0);
    }
    return { nodeMs: (usage.user + usage.system) / 1000, postgresMs };
  }
}
