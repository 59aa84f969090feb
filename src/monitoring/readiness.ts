/**
 * Readiness: Postgres and Redis answer, migrations applied, not shutting down. GET
 * /health/ready answers with it and the `workflow_ready` gauge reports it on each scrape, so
 * the probe and the alert (README "Monitoring kit") can never disagree.
 */

export interface Check {
  status: 'up' | 'down';
  latency_ms: number;
  error?: string;
}

export interface Readiness {
  ready: boolean;
  checks: { postgres: Check; redis: Check; migrations: Check };
  shutting_down: boolean;
}

export interface ReadinessSources {
  pingPostgres: () => Promise<unknown>;
  pingRedis: () => Promise<unknown>;
  lifecycle: { databaseReady: boolean; shuttingDown: boolean };
  timeoutMs: number;
}

async function timed(probe: () => Promise<unknown>, timeoutMs: number): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'up', latency_ms: Math.round(performance.now() - started) };
  } catch (error) {
    return {
      status: 'down',
      latency_ms: Math.round(performance.now() - started),
      error: error instanceof Error ? error.message || error.name : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

export async function checkReadiness(sources: ReadinessSources): Promise<Readiness> {
  const [postgres, redis] = await Promise.all([
    timed(sources.pingPostgres, sources.timeoutMs),
    timed(sources.pingRedis, sources.timeoutMs),
  ]);
  const { databaseReady, shuttingDown } = sources.lifecycle;
  const migrations: Check = databaseReady
    ? { status: 'up', latency_ms: 0 }
    : { status: 'down', latency_ms: 0, error: 'migrations not applied yet' };
  const ready = postgres.status === 'up' && redis.status === 'up' && databaseReady && !shuttingDown;
  return { ready, checks: { postgres, redis, migrations }, shutting_down: shuttingDown };
}
