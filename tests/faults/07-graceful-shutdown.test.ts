import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import { createWorkflow, httpStep, request, sleep, useFaultScenario } from './harness.js';
import { waitAllTerminal } from './invariants.js';

const GRACE_MS = 6000;
const CONCURRENCY = 8;
const LONG_POLLS = 3;
const LOAD_BEFORE_SIGTERM_MS = 5000;

const scenario = useFaultScenario('7-graceful-shutdown', {
  prefixLetters: 'fg',
  env: { SERVICE_ROLE: 'all', SHUTDOWN_GRACE_MS: String(GRACE_MS), WORKER_CONCURRENCY: '20' },
  // Slow side effects, so that steps are mid-call when the process is told to stop.
  sideEffects: { minDelayMs: 100, maxDelayMs: 600 },
});

interface Sent {
  startedAt: number;
  endedAt: number;
  outcome: number | 'error';
  error?: string;
}

describe('SIGTERM during load', () => {
  it('finishes in-flight requests, loses no accepted work and exits within its grace period', async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const first = await fleet.api(port, { SERVICE_ROLE: 'all' });
    const workflowId = await createWorkflow(apiUrl, {
      name: 'three slow calls',
      workflow_type: 'sequential',
      steps: ['one', 'two', 'three'].map((id) => httpStep(server.url, id)),
    });

    const sent: Sent[] = [];
    const accepted: string[] = [];
    let loading = true;
    let index = 0;
    const lanes = Array.from({ length: CONCURRENCY }, async () => {
      while (loading) {
        const startedAt = Date.now();
        index += 1;
        try {
          const answer = await request(`${apiUrl}/workflows/${workflowId}/execute`, {
            method: 'POST',
            body: { input_data: { index } },
            timeoutMs: 30_000,
          });
          sent.push({ startedAt, endedAt: Date.now(), outcome: answer.status });
          if (answer.status === 202) accepted.push((answer.body as { id: string }).id);
          await sleep(100);
        } catch (error) {
          sent.push({
            startedAt,
            endedAt: Date.now(),
            outcome: 'error',
            error:
              error instanceof Error ? `${error.message} ${String(error.cause)}` : String(error),
          });
          // The server is gone: stop this lane (a refused connection answers at once).
          await sleep(50);
        }
      }
    });
    await sleep(LOAD_BEFORE_SIGTERM_MS - 1000);
    // Long polls of external workers (no task will come) are in flight too: shutdown must
    // answer them early rather than wait out their wait_seconds.
    const polls = Array.from({ length: LONG_POLLS }, async (_, index) => {
      const startedAt = Date.now();
      try {
        const answer = await request(`${apiUrl}/tasks/poll`, {
          method: 'POST',
          body: { step_types: ['nothing-to-do'], worker_id: `poller-${index}`, wait_seconds: 25 },
          timeoutMs: 30_000,
        });
        return { startedAt, endedAt: Date.now(), outcome: answer.status } as Sent;
      } catch (error) {
        return { startedAt, endedAt: Date.now(), outcome: 'error', error: String(error) } as Sent;
      }
    });
    await sleep(1000);
    const sigtermAt = Date.now();
    first.child.kill('SIGTERM');
    const exitCode = await first.exited;
    const exitMs = Date.now() - sigtermAt;
    loading = false;
    await Promise.all(lanes);
    const longPolls = await Promise.all(polls);

    // Requests the server was already working on when SIGTERM came (sent a moment before,
    // not yet answered) must all get their answer.
    const inFlight = [...sent, ...longPolls].filter(
      (request) => request.startedAt < sigtermAt - 20 && request.endedAt > sigtermAt,
    );
    const inFlightFailed = inFlight.filter((request) => request.outcome === 'error');

    // A new process picks up whatever the stopped one handed back.
    await fleet.api(port, { SERVICE_ROLE: 'all' });
    await waitAllTerminal(databaseUrl, accepted, 120_000);
    const report = await scenario.checkInvariants(accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills: 0, restarts: 1 },
      {
        grace_ms: GRACE_MS,
        exit_ms: exitMs,
        exit_code: exitCode ?? -1,
        requests: sent.length,
        in_flight_at_sigterm: inFlight.length,
        in_flight_failed: inFlightFailed.length,
        long_polls_answered: longPolls.filter((poll) => poll.outcome === 200).length,
      },
    );
    expect(report.problems).toEqual([]);
    expect(exitCode).toBe(0);
    expect(exitMs).toBeLessThanOrEqual(GRACE_MS);
    expect(inFlightFailed).toEqual([]);
    expect(longPolls.map((poll) => poll.outcome)).toEqual(Array(LONG_POLLS).fill(200));
    // Nothing but acknowledgements and, once shutting down, 503s and refused connections.
    expect(
      sent.filter(
        (request) =>
          request.outcome !== 202 && request.outcome !== 503 && request.startedAt < sigtermAt - 20,
      ),
    ).toEqual([]);
  });
});
