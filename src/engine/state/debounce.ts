import type { ExecutionRow } from '../../domain/execution.js';
import { MAX_DEBOUNCE_SECONDS } from '../../domain/flow-control.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { Queryable } from '../../store/db.js';
import * as debounce from '../../store/debounce.js';
import { evaluateFlowKey } from '../flow-keys.js';
import type { Effects } from './effects.js';
import type { Machine } from './machine.js';

/**
 * Debounce (docs/ARCHITECTURE.md, "Flow control"): starts of a workflow with
 * `config.debounce` and the same key collapse into one `queued` execution, which takes each
 * start's input and is admitted once `period_seconds` pass without a start, at most
 * `max_wait_seconds` (else MAX_DEBOUNCE_SECONDS) after its first. The key is evaluated where
 * the start happens, as any expression is (sandboxed when it may be expensive): a start must
 * know at once which execution it joins.
 */

/** A clock a little behind Postgres's must not leave a due window open until the sweep. */
const DUE_SLACK_MS = 100;

/**
 * Collects the start into the execution whose window is open for its key (that execution,
 * with the advance job of its window's new end), or gives the key a new execution opens.
 */
export async function collectStart(
  m: Machine,
  tx: Queryable,
  request: { workflowId: string; input: unknown; labels?: Record<string, string> | undefined },
  version: number,
  definition: WorkflowDefinition,
  effects: Effects,
): Promise<{ collected: ExecutionRow } | { key: string }> {
  const config = definition.config.debounce;
  if (!config) throw new Error('collectStart needs config.debounce');
  const subject = {
    id: '',
    workflow_id: request.workflowId,
    workflow_version: version,
    input: request.input ?? {},
    labels: request.labels ?? {},
  };
  const { key } = await evaluateFlowKey(config.key, subject, m.options.expressionTimeoutMs);
  await debounce.lockDebounceKey(tx, request.workflowId, key);
  const row = await debounce.collectInto(
    tx,
    request.workflowId,
    key,
    request.input,
    config.period_seconds,
  );
  if (!row) return { key };
  effects.timedAdvances.push({ executionId: row.id, runAt: row.debounce_until as Date });
  return { collected: row };
}

/** Opens the window of a new debounced execution; its end's advance job admits it. */
export async function openDebounceWindow(
  tx: Queryable,
  execution: ExecutionRow,
  definition: WorkflowDefinition,
  key: string,
  effects: Effects,
): Promise<ExecutionRow> {
  const config = definition.config.debounce;
  if (!config) throw new Error('openDebounceWindow needs config.debounce');
  const maxWait = config.max_wait_seconds ?? MAX_DEBOUNCE_SECONDS;
  const opened = await debounce.openWindow(tx, execution.id, key, config.period_seconds, maxWait);
  effects.timedAdvances.push({ executionId: opened.id, runAt: opened.debounce_until as Date });
  return opened;
}

/**
 * For an admission: true while the execution's window is still open (a later start pushed it
 * back; that start's job comes later); else closes the window, if it had one.
 */
export async function stillCollecting(tx: Queryable, execution: ExecutionRow): Promise<boolean> {
  if (execution.debounce_until === null) return false;
  if (execution.debounce_until.getTime() > Date.now() + DUE_SLACK_MS) return true;
  await debounce.closeWindow(tx, execution.id);
  return false;
}
