import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import { createWorkflow, httpStep, request, runPool, useFaultScenario } from './harness.js';
import { waitAllTerminal } from './invariants.js';

const REQUESTS = 2000;
const CONCURRENCY = 250;
const REQUEST_LIMIT_MS = 30_000;

const scenario = useFaultScenario('6-overload', { prefixLetters: 'fo' });

describe(`${REQUESTS} execute requests, ${CONCURRENCY} at a time`, () => {
  it('answers 202, 429 or 503 with Retry-After (never 500, never a hang), and every 202 completes', async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    await Promise.all([fleet.api(port), fleet.worker(), fleet.worker()]);
    const workflowId = await createWorkflow(apiUrl, {
      name: 'two calls',
      workflow_type: 'sequential',
      steps: [httpStep(server.url, 'a'), httpStep(server.url, 'b')],
    });

    const answers: Record<string, number> = {};
    const accepted: string[] = [];
    const withoutRetryAfter: string[] = [];
    let slowest = 0;
    const burstStarted = Date.now();
    await runPool(REQUESTS, CONCURRENCY, async (index) => {
      let key: string;
      try {
        const answer = await request(`${apiUrl}/workflows/${workflowId}/execute`, {
          method: 'POST',
          body: { input_data: { index } },
          timeoutMs: REQUEST_LIMIT_MS,
        });
        slowest = Math.max(slowest, answer.ms);
        key = String(answer.status);
        if (answer.status === 202) accepted.push((answer.body as { id: string }).id);
        if (
          (answer.status === 429 || answer.status === 503) &&
          !answer.headers.get('retry-after')
        ) {
          withoutRetryAfter.push(`${answer.status} ${JSON.stringify(answer.body)}`);
        }
        if (answer.status === 500 && !answers['500']) {
          console.log(`first 500: ${JSON.stringify(answer.body)}`);
        }
      } catch (error) {
        key = error instanceof Error && error.name === 'TimeoutError' ? 'hang' : 'error';
      }
      answers[key] = (answers[key] ?? 0) + 1;
    });
    const burstMs = Date.now() - burstStarted;

    await waitAllTerminal(databaseUrl, accepted, 240_000);
    const report = await scenario.checkInvariants(accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills: 0, restarts: 0 },
      {
        requests: REQUESTS,
        concurrency: CONCURRENCY,
        accepted_202: answers['202'] ?? 0,
        shed_429: answers['429'] ?? 0,
        shed_503: answers['503'] ?? 0,
        burst_seconds: Math.round(burstMs / 100) / 10,
        slowest_answer_ms: Math.round(slowest),
        answers: JSON.stringify(answers),
      },
    );
    expect(report.problems).toEqual([]);
    expect(
      Object.keys(answers).filter((status) => !['202', '429', '503'].includes(status)),
    ).toEqual([]);
    expect(withoutRetryAfter).toEqual([]);
    expect(accepted.length).toBeGreaterThan(0);
    // Shed requests left nothing behind: every execution in Postgres was acknowledged.
    expect(report.executions).toBe(accepted.length);
  });
});
