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

export async function evaluateFlowKey(
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
