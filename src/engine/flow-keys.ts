import { ERROR_FLOW_KEY, MAX_FLOW_KEY_LENGTH } from '../domain/flow-control.js';
import { evaluateExpression, messageOf } from './expressions.js';
import type { ExpressionContext } from './steps/types.js';

/**
 * The keys of flow control (docs/ARCHITECTURE.md, "Flow control"): a caller's key expression,
 * evaluated like any expression (sandboxed when it may be expensive, under the time limit),
 * made text. A failure is never fatal: the work goes under ERROR_FLOW_KEY, with the reason,
 * so one bad input shares a budget with other bad inputs and never stalls the rest.
 */

/** The key as text: strings as they are, numbers and booleans spelt; anything else fails. */
function keyText(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    const text = String(value);
    if (text.length <= MAX_FLOW_KEY_LENGTH) return text;
    throw new Error(`the key is longer than ${MAX_FLOW_KEY_LENGTH} characters`);
  }
  throw new Error(
    value === undefined
      ? 'the key expression gave nothing'
      : 'the key expression must give a string, a number or a boolean',
  );
}

/** What a flow key sees of an execution: `{input, labels}`, and its identity. */
export interface FlowKeySubject {
  id: string;
  workflow_id: string;
  workflow_version: number;
  input: unknown;
  labels: Record<string, string>;
}

/** The key `source` gives in an expression context (a step's limits see the step's). */
export async function evaluateKeyIn(
  source: string,
  context: ExpressionContext,
  timeoutMs: number,
): Promise<{ key: string; error: string | null }> {
  try {
    return { key: keyText(await evaluateExpression(source, context, { timeoutMs })), error: null };
  } catch (error) {
    return { key: ERROR_FLOW_KEY, error: messageOf(error) };
  }
}

/** An execution's key: `source` over its `{input, labels}`; no source: `''`, one budget for
 * the workflow. */
export function evaluateFlowKey(
  source: string | undefined,
  subject: FlowKeySubject,
  timeoutMs: number,
): Promise<{ key: string; error: string | null }> {
  if (source === undefined) return Promise.resolve({ key: '', error: null });
  const { id, workflow_id, workflow_version, input, labels } = subject;
  const context: ExpressionContext = {
    input,
    labels,
    steps: {},
    iteration: 0,
    execution: { id, workflow_id, workflow_version },
  };
  return evaluateKeyIn(source, context, timeoutMs);
}
