/**
 * A small external worker for the seed README's step types: `validation`, `transformation`
 * and `storage`. It long-polls the Workflow Service for tasks, heartbeats while it works, and
 * completes each task (or fails it when the work cannot be done).
 *
 *   WORKFLOW_SERVICE_URL=http://localhost:8000 npm run example:worker
 *
 * Plain fetch, no SDK: this is all another service needs to do the steps of a workflow.
 * Set WORKFLOW_SERVICE_API_KEY (or WORKFLOW_SERVICE_TOKEN) when the service requires auth.
 */

const serviceUrl = (process.env.WORKFLOW_SERVICE_URL ?? 'http://localhost:8000').replace(/\/$/, '');
const workerId = process.env.WORKER_ID ?? `example-worker-${process.pid}`;
const stepTypes = ['validation', 'transformation', 'storage'];

interface Task {
  task_token: string;
  execution_id: string;
  step_id: string;
  step_type: string;
  config: Record<string, unknown>;
  input: Record<string, unknown>;
  attempt: number;
}

function headers(): Record<string, string> {
  const result: Record<string, string> = { 'content-type': 'application/json' };
  if (process.env.WORKFLOW_SERVICE_API_KEY)
    result['x-api-key'] = process.env.WORKFLOW_SERVICE_API_KEY;
  if (process.env.WORKFLOW_SERVICE_TOKEN)
    result.authorization = `Bearer ${process.env.WORKFLOW_SERVICE_TOKEN}`;
  return result;
}

async function call(path: string, body: unknown): Promise<Response> {
  return fetch(`${serviceUrl}${path}`, {
    method: 'POST',
    headers: headers(),
    body: JSON.stringify(body),
  });
}

/** The "work" of each step type: stand-ins that show what a real agent would return. */
async function perform(task: Task): Promise<unknown> {
  switch (task.step_type) {
    case 'validation':
      return { valid: true, schema: task.config.schema ?? null, checked: Object.keys(task.input) };
    case 'transformation':
      return {
        transformed: true,
        rules: task.config.rules ?? null,
        source: task.input.source_file ?? null,
      };
    case 'storage':
      return {
        stored: true,
        destination: task.config.destination ?? 'database',
        at: new Date().toISOString(),
      };
    default:
      throw new Error(`this worker does not do "${task.step_type}" tasks`);
  }
}

async function handle(task: Task): Promise<void> {
  // Heartbeat while working, so the task is not handed to another worker.
  const beat = setInterval(() => {
    void call(`/tasks/${task.task_token}/heartbeat`, {}).catch(() => {});
  }, 10_000);
  try {
    const output = await perform(task);
    const response = await call(`/tasks/${task.task_token}/complete`, { output });
    console.log(
      `${task.step_type} ${task.execution_id}/${task.step_id}: completed (${response.status})`,
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await call(`/tasks/${task.task_token}/fail`, { error: message, retryable: false });
    console.log(`${task.step_type} ${task.execution_id}/${task.step_id}: failed: ${message}`);
  } finally {
    clearInterval(beat);
  }
}

let running = true;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    running = false;
  });
}

console.log(`worker ${workerId} polling ${serviceUrl} for ${stepTypes.join(', ')}`);
while (running) {
  try {
    const response = await call('/tasks/poll', {
      step_types: stepTypes,
      worker_id: workerId,
      max_tasks: 5,
      wait_seconds: 5,
    });
    if (!response.ok) throw new Error(`poll answered ${response.status}: ${await response.text()}`);
    const { tasks } = (await response.json()) as { tasks: Task[] };
    await Promise.all(tasks.map(handle));
  } catch (error) {
    console.error(
      `poll failed, retrying in 2 s: ${error instanceof Error ? error.message : String(error)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
console.log('worker stopped');
