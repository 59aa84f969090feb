import { z } from 'zod';
import { ExpressionLimitError } from '../expression-sandbox/index.js';
import { ExpressionError, evaluateExpression } from '../expressions.js';
import type { StepInvocation, StepOutcome, StepTypeDefinition } from './types.js';
import { defineStepType, StepFailure } from './types.js';

// Only presence here: the validator checks `expression` as an expression field.
const configSchema = z.looseObject({
  expression: z.custom<unknown>(
    (expression) => expression !== undefined,
    'is required for a transform step',
  ),
});

/**
 * The `transform` step: evaluates `config.expression`, plain JSONata source (not a `{% %}`
 * template), against the execution context.
 */
async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const { expression } = invocation.config;
  if (typeof expression !== 'string' || expression.trim() === '') {
    throw new StepFailure('Invalid transform step config: `expression` must be JSONata source', {
      type: 'invalid_config',
      retryable: false,
    });
  }
  try {
    const output = await evaluateExpression(expression, invocation.context, {
      timeoutMs: invocation.env.expressionTimeoutMs,
    });
    // No match is a legitimate result; null is how it survives being stored as JSON.
    return { kind: 'completed', output: output === undefined ? null : output };
  } catch (error) {
    if (error instanceof ExpressionLimitError) {
      throw new StepFailure(`Transform expression failed: ${error.message}`, {
        type: error.code,
        retryable: false,
        details: { limit: error.limit },
      });
    }
    if (!(error instanceof ExpressionError)) throw error;
    // The same expression on the same context fails the same way again.
    throw new StepFailure(`Transform expression failed: ${error.message}`, {
      type: 'expression_error',
      retryable: false,
      details: { code: error.code, position: error.position },
    });
  }
}

export const transformStep: StepTypeDefinition = defineStepType({
  type: 'transform',
  configSchema,
  expressionFields: ['expression'],
  runsInline: true,
  run,
});
