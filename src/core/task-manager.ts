import type { EffectSink } from '../engine/state/effects.js';
import type { AttemptResult, StateManager } from '../engine/state/state-manager.js';
import { TaskNotFoundError, TaskStaleError } from '../errors.js';
import type { TaskView } from '../schemas/tasks.js';
import { type Pool, withTransaction } from '../store/db.js';
import * as taskStore from '../store/task-store.js';

export type { TaskView } from '../schemas/tasks.js';

export interface PollRequest {
  step_types?: string[] | undefined;
  agent_id?: string | undefined;
  worker_id: string;
  max_tasks: number;
  wait_seconds: number;
}

/** Tokens are UUIDs (the run's lease); anything else was never issued. */
const TOKEN_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkToken(token: string): void {
  if (!TOKEN_PATTERN.test(token)) throw new TaskNotFoundError();
}

/** How often a long poll looks again; an answer comes at most this late after a task appears. */
const POLL_INTERVAL_MS = 200;

/** How often one process records a poll per step type: far below NO_WORKER_SECONDS. */
const POLL_RECORD_MS = 5000;

function leaseExpiry(claimedAt: Date | null, spec: taskStore.TaskSpec): string {
  return new Date((claimedAt ?? new Date()).getTime() + spec.lease_seconds * 1000).toISOString();
}

function taskView(task: taskStore.ClaimedTask): TaskView {
  return {
    task_token: task.lease_id as string,
    execution_id: task.execution_id,
    step_id: task.step_id,
    step_type: task.wait_spec.step_type,
    agent_id: task.wait_spec.agent_id,
    config: task.wait_spec.config,
    input: task.wait_spec.input,
    attempt: task.attempt,
    deadline: task.deadline_at ? task.deadline_at.toISOString() : null,
    lease_expires_at: leaseExpiry(task.heartbeat_at, task.wait_spec),
  };
}

/**
 * The tasks API: external workers claim waiting runs of non-built-in step types (long poll),
 * heartbeat, and complete or fail them. The token is the run's lease, so a completion from a
 * worker that lost the task is fenced off exactly like a stale engine worker's.
 */
export class TaskManager {
  /** Aborted on shutdown: long polls answer at once instead of holding the server open. */
  private readonly closing = new AbortController();

  constructor(private readonly options: { pool: Pool; state: StateManager; effects: EffectSink }) {}

  /** Ends every long poll now and later (the process is shutting down). */
  stopPolling(): void {
    this.closing.abort();
  }

  /** Step types whose poll this process recorded, and when (ms). */
  private readonly pollsRecorded = new Map<string, number>();

  /**
   * Records who polls for what (task_pollers), so a diagnosis can tell a task nobody polls
   * for; at most once per POLL_RECORD_MS per step type and process.
   */
  private async recordPoll(request: PollRequest): Promise<void> {
    const now = Date.now();
    const types = request.step_types && request.step_types.length > 0 ? request.step_types : ['*'];
    const due = types.filter((type) => now - (this.pollsRecorded.get(type) ?? 0) >= POLL_RECORD_MS);
    if (due.length === 0) return;
    await taskStore.recordPoll(this.options.pool, due, request.worker_id);
    for (const type of due) this.pollsRecorded.set(type, now);
  }

  /** Claims up to max_tasks tasks, waiting up to wait_seconds for one to appear. */
  async poll(request: PollRequest, caller?: AbortSignal): Promise<TaskView[]> {
    await this.recordPoll(request);
    const deadline = Date.now() + request.wait_seconds * 1000;
    const signal = caller ? AbortSignal.any([caller, this.closing.signal]) : this.closing.signal;
    for (;;) {
      const tasks = await withTransaction(this.options.pool, (tx) =>
        taskStore.claimTasks(tx, {
          stepTypes:
            request.step_types && request.step_types.length > 0 ? request.step_types : null,
          agentId: request.agent_id ?? null,
          workerId: request.worker_id,
          max: request.max_tasks,
        }),
      );
      if (tasks.length > 0 || Date.now() >= deadline || signal.aborted) return tasks.map(taskView);
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(POLL_INTERVAL_MS, deadline - Date.now())),
      );
    }
  }

  /** Extends the lease of a claimed task. */
  async heartbeat(token: string): Promise<{ task_token: string; lease_expires_at: string }> {
    checkToken(token);
    const run = await taskStore.heartbeatTask(this.options.pool, token);
    if (!run) throw await this.whyNot(token);
    return {
      task_token: token,
      lease_expires_at: leaseExpiry(run.heartbeat_at, run.wait_spec),
    };
  }

  /** Completes a task with its output; the step completes and the execution moves on. */
  async complete(token: string, output: unknown): Promise<{ status: 'completed' }> {
    await this.record(token, { kind: 'completed', output: output ?? null });
    return { status: 'completed' };
  }

  /** Fails a task; `retryable: false` fails the step at once, otherwise its retry policy applies. */
  async fail(
    token: string,
    failure: { error: string; retryable: boolean; details?: unknown },
  ): Promise<{ status: 'failed' }> {
    checkToken(token);
    const known = await taskStore.findTaskToken(this.options.pool, token);
    await this.record(token, {
      kind: 'failed',
      error: {
        message: failure.error,
        type: 'task_failed',
        retryable: failure.retryable,
        attempt: known?.attempt ?? 0,
        ...(failure.details === undefined ? {} : { details: failure.details }),
      },
    });
    return { status: 'failed' };
  }

  private async record(token: string, result: AttemptResult): Promise<void> {
    checkToken(token);
    const known = await taskStore.findTaskToken(this.options.pool, token);
    if (!known) throw new TaskNotFoundError();
    const effects = await this.options.state.recordAttempt(
      known.run_id,
      known.execution_id,
      { leaseId: token },
      result,
    );
    if (!effects) throw new TaskStaleError('poll for a new task');
    await this.options.effects.apply(effects);
  }

  private async whyNot(token: string): Promise<Error> {
    return (await taskStore.findTaskToken(this.options.pool, token))
      ? new TaskStaleError('stop working on it')
      : new TaskNotFoundError();
  }
}
