import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project.js';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  NUMBER_CHECK_STEP,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

/** The dashboard at /ui: its assets over HTTP, then a real headless Chromium watching a run. */

const ctx = useTestApp();
const CHROMIUM = '/usr/bin/chromium';
const RESULTS = path.join(projectRoot, 'test-results');
let base: string;

/** expect.poll with room for a loaded CI machine (vitest's default is 1 s). */
const poll = <T>(read: () => T | Promise<T>) =>
  expect.poll(read, { timeout: 15_000, interval: 50 });

beforeAll(async () => {
  base = await ctx.app.listen({ port: 0, host: '127.0.0.1' });
});

describe('GET /ui', () => {
  it('serves the page and its assets, and nothing else', async () => {
    const page = await fetch(`${base}/ui`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/ui/app.js"></script>');
    for (const [asset, type] of [
      ['app.js', 'text/javascript'],
      ['api.js', 'text/javascript'],
      ['dom.js', 'text/javascript'],
      ['charts.js', 'text/javascript'],
      ['styles.css', 'text/css'],
    ]) {
      const response = await fetch(`${base}/ui/${asset}`);
      expect(response.status, asset).toBe(200);
      expect(response.headers.get('content-type'), asset).toContain(type);
      const etag = response.headers.get('etag') as string;
      expect(etag).toBeTruthy();
      const again = await fetch(`${base}/ui/${asset}`, { headers: { 'if-none-match': etag } });
      expect(again.status, asset).toBe(304);
    }
    expect((await fetch(`${base}/ui/`)).status).toBe(200);
    for (const probe of [
      '/ui/nope.js',
      '/ui/%2e%2e%2fpackage.json',
      '/ui/..%2f..%2fpackage.json',
    ]) {
      const response = await fetch(`${base}${probe}`);
      expect(response.status, probe).toBe(404);
      expect(response.headers.get('content-type'), probe).toContain('application/problem+json');
    }
  });
});

describe('the dashboard in a browser', () => {
  let browser: BrowserContext;
  let profile: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); .ci/run does`,
      );
    }
    profile = await mkdtemp(path.join(tmpdir(), 'wf-ui-chromium-'));
    await mkdir(RESULTS, { recursive: true });
    try {
      // A persistent context is how Playwright takes a fresh --user-data-dir of our own.
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-dev-shm-usage',
        ],
        viewport: { width: 1280, height: 900 },
        timeout: 30_000,
      });
    } catch (error) {
      throw new Error(
        `Chromium at ${CHROMIUM} could not be launched for the dashboard test: ${String(error)}`,
      );
    }
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it('shows an execution as its steps complete, without reloading', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'Dashboard demo',
      workflow_type: 'sequential',
      steps: [
        { id: 'fetch', name: 'Fetch data', step_type: 'noop' },
        { id: 'hold', name: 'Hold three seconds', step_type: 'delay', config: { seconds: 3 } },
        { id: 'check', name: 'Check', step_type: 'transform', config: { expression: '1 + 1' } },
        { id: 'store', name: 'Store', step_type: 'noop', dependencies: ['check'] },
      ],
    });
    const id = await startExecution(app, workflowId, { source_file: 'data.csv' });
    // Held while `hold` sleeps, so the page surely opens before the rest runs.
    await waitForExecution(app, id, (execution) => stepStatuses(execution).hold === 'waiting');
    expect((await app.inject({ method: 'POST', url: `/executions/${id}/pause` })).statusCode).toBe(
      200,
    );

    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(`${base}/ui#/executions/${id}`);
    const status = (stepId: string) =>
      page.locator(`#step-runs tr[data-step-id="${stepId}"] [data-status]`);
    await poll(() => status('hold').textContent()).toBe('waiting');
    await poll(() => status('check').textContent()).toBe('pending');
    await poll(() => page.locator('#execution-status').textContent()).toBe('paused');
    // Why it waits: paused, and its next steps wait on a sleeping one.
    await poll(() => page.locator('#diagnosis-summary').textContent()).toContain('paused');
    await poll(() =>
      page.locator('#diagnosis-steps li[data-step-id="check"]').getAttribute('data-kind'),
    ).toBe('paused');
    await page.evaluate('window.loadedOnce = true');

    expect((await app.inject({ method: 'POST', url: `/executions/${id}/resume` })).statusCode).toBe(
      200,
    );
    for (const stepId of ['fetch', 'hold', 'check', 'store']) {
      await poll(() => status(stepId).textContent()).toBe('completed');
    }
    await poll(() => page.locator('#execution-status').textContent()).toBe('completed');
    await poll(() => page.locator('#diagnosis-summary').textContent()).toBe('ended: completed');
    // The same document all along: the changes came over the stream.
    expect(await page.evaluate('window.loadedOnce')).toBe(true);
    // The graph shows every step, completed.
    const nodes = page.locator('svg.dag g.node');
    await poll(() => nodes.count()).toBe(4);
    expect(await page.locator('svg.dag g.node.status-completed').count()).toBe(4);
    await poll(() => page.locator('.connection').textContent()).toBe('Ended');
    await page.screenshot({ path: path.join(RESULTS, 'ui-execution.png'), fullPage: true });

    // The overview lists the workflow with its statistics; the executions list filters.
    await page.goto(`${base}/ui#/`);
    const row = page.locator('tr', { has: page.locator('a', { hasText: 'Dashboard demo' }) });
    await poll(() => row.count()).toBe(1);
    expect(await row.locator('td').nth(2).textContent()).toBe('1');
    await page.screenshot({ path: path.join(RESULTS, 'ui-overview.png'), fullPage: true });

    await page.goto(`${base}/ui#/executions?status=completed`);
    await poll(() => page.locator(`a[href="#/executions/${id}"]`).count()).toBe(1);
    expect(await page.locator('#filter-status').inputValue()).toBe('completed');

    // Labels show in the list, and filter it: typed in the form, applied, kept in the link.
    const started = await app.inject({
      method: 'POST',
      url: `/workflows/${workflowId}/execute`,
      payload: { labels: { order: '4711' } },
    });
    const labelled = started.json().id as string;
    await page.fill('#filter-labels', 'order=4711');
    await page.selectOption('#filter-status', '');
    await page.click('form.filters button[type="submit"]');
    await poll(() => page.locator(`a[href="#/executions/${labelled}"]`).count()).toBe(1);
    expect(await page.locator(`a[href="#/executions/${id}"]`).count()).toBe(0);
    expect(await page.locator('tbody .tag').first().textContent()).toBe('order=4711');
    expect(page.url()).toContain('labels=order%3D4711');

    // Every form control has a label; the page has one main heading.
    const unlabelled = await page.evaluate(
      `[...document.querySelectorAll('input, select')]
         .filter((control) => control.labels.length === 0)
         .map((control) => control.id || control.outerHTML)`,
    );
    expect(unlabelled).toEqual([]);
    expect(await page.locator('h1').count()).toBe(1);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('cancels every execution of one label from the list, after a dry run', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'Waits for a parcel',
      workflow_type: 'sequential',
      steps: [
        { id: 'parcel', name: 'Parcel', step_type: 'wait_for_event', config: { event: 'parcel' } },
      ],
    });
    const start = async (tenant: string) => {
      const response = await app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { labels: { tenant } },
      });
      return response.json().id as string;
    };
    const gone: string[] = [];
    for (let index = 0; index < 3; index += 1) gone.push(await start('gone'));
    const kept = await start('kept');
    for (const id of [...gone, kept]) {
      await waitForExecution(app, id, (execution) => execution.status === 'waiting');
    }

    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${base}/ui#/executions?labels=tenant%3Dgone`);
    await poll(() => page.locator('tbody tr').count()).toBe(3);
    await page.selectOption('#bulk-action', 'cancel');
    await page.fill('#bulk-reason', 'tenant left');
    await page.click('#bulk-preview-button');
    // The dry run: its count and sample, and nothing changed yet.
    await poll(() => page.locator('#bulk-count').textContent()).toContain('3 execution(s) match');
    expect(await page.locator('#bulk-sample li').count()).toBe(3);
    expect((await getExecution(app, gone[0] as string)).status).toBe('waiting');
    await page.click('#bulk-run');
    await poll(() => page.locator('#bulk-progress').textContent()).toContain(
      'completed: 3 of 3 done',
    );
    for (const id of gone) expect((await getExecution(app, id)).status).toBe('cancelled');
    expect((await getExecution(app, kept)).status).toBe('waiting');
    // The list shows them as the action left them.
    await poll(() => page.locator('tbody .badge', { hasText: 'cancelled' }).count()).toBe(3);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('cancels an execution from its page, asking for a reason first', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'Waits to be cancelled',
      workflow_type: 'sequential',
      steps: [
        { id: 'wait', name: 'Wait', step_type: 'wait_for_event', config: { event: 'never' } },
      ],
    });
    const id = await startExecution(app, workflowId, {});
    await waitForExecution(app, id, (execution) => execution.status === 'waiting');
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${base}/ui#/executions/${id}`);
    // Offered what a waiting execution allows, and not what it does not.
    await poll(() => page.locator('#action-cancel').count()).toBe(1);
    expect(await page.locator('#action-resume').count()).toBe(0);
    await page.click('#action-cancel');
    await page.fill('#action-reason', 'no longer needed');
    await page.click('#action-confirm');
    await poll(() => page.locator('#execution-status').textContent()).toBe('cancelled');
    expect((await getExecution(app, id)).status).toBe('cancelled');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('upgrades a waiting execution from its page after previewing the plan', async () => {
    const { app } = ctx;
    const wait = { id: 'wait', name: 'Wait', step_type: 'wait_for_event', config: { event: 'go' } };
    const workflowId = await createWorkflow(app, {
      name: 'Gets a new step',
      workflow_type: 'sequential',
      steps: [wait],
    });
    const id = await startExecution(app, workflowId, {});
    await waitForExecution(app, id, (execution) => execution.status === 'waiting');
    const updated = await app.inject({
      method: 'PUT',
      url: `/workflows/${workflowId}`,
      payload: { steps: [wait, { id: 'after', name: 'After', step_type: 'noop' }] },
    });
    expect(updated.statusCode, updated.body).toBe(200);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${base}/ui#/executions/${id}`);
    await poll(() => page.locator('#action-upgrade').count()).toBe(1);
    await page.click('#action-upgrade');
    await poll(() => page.locator('#action-version option').count()).toBe(1);
    await page.fill('#action-reason', 'ship the fix');
    await page.click('#action-preview');
    await poll(() => page.locator('.plan [data-part="added"]').textContent()).toBe('added: after');
    await page.click('#action-confirm');
    await poll(async () => (await getExecution(app, id)).workflow_version).toBe(2);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('retries a failed execution with corrected input from its page and sees it complete', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'Needs a number',
      workflow_type: 'sequential',
      steps: [NUMBER_CHECK_STEP],
    });
    const id = await startExecution(app, workflowId, { n: 'x' });
    await waitForExecution(app, id, (execution) => execution.status === 'failed');
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${base}/ui#/executions/${id}`);
    await poll(() => page.locator('#action-retry').count()).toBe(1);
    await page.click('#action-retry');
    await page.fill('#action-input', '{"n": "3"}');
    await page.fill('#action-reason', 'n was a typo');
    await page.click('#action-preview');
    await poll(() => page.locator('.plan [data-part="rerun"]').textContent()).toBe('rerun: check');
    expect((await getExecution(app, id)).status).toBe('failed');
    await page.click('#action-confirm');
    await poll(() => page.locator('#execution-status').textContent()).toBe('completed');
    // The history shows the edit, with who and why.
    await poll(() => page.locator('#history [data-action="edit"]').count()).toBe(1);
    expect(await page.locator('#history [data-action="edit"]').textContent()).toContain(
      'n was a typo',
    );
    expect(problems).toEqual([]);
    await page.close();
  });

  it('sends the credential it is given with every API call and on the stream', async () => {
    const page = await browser.newPage();
    const seen: Array<{ url: string; key: string | undefined }> = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (!url.pathname.startsWith('/ui')) {
        seen.push({
          url: url.pathname + url.search,
          key: request.headers()['x-api-key'] ?? url.searchParams.get('access_token') ?? undefined,
        });
      }
    });
    await page.goto(`${base}/ui#/`);
    await page.selectOption('#auth-kind', 'api-key');
    await page.fill('#auth-value', 'wfk_test_key');
    await page.click('#auth-form button[type="submit"]');
    await poll(() => page.locator('#auth-state').textContent()).toBe('Using an API key');
    await poll(() => seen.some((request) => request.url === '/stats')).toBe(true);
    expect(seen.filter((request) => request.url === '/stats').at(-1)?.key).toBe('wfk_test_key');
    // Kept for this tab only.
    expect(await page.evaluate(`sessionStorage.getItem('workflow-service.credential')`)).toContain(
      'wfk_test_key',
    );
    const executions = (await ctx.app.inject({ method: 'GET', url: '/executions?limit=1' })).json();
    await page.goto(`${base}/ui#/executions/${executions.items[0].id}`);
    await poll(() =>
      seen.some((request) => request.url.includes('/stream?access_token=wfk_test_key')),
    ).toBe(true);
    await page.close();
  });
});
