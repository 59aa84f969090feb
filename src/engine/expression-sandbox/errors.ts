/** Which hard limit of the expression sandbox an evaluation breached. */
export type ExpressionLimit = 'time' | 'memory' | 'output' | 'thread';

/** The `code` of every ExpressionLimitError; the engine records it as the step error's type. */
export const EXPRESSION_LIMIT_CODE = 'expression_limit';

/**
 * An expression stopped by a hard limit of the sandbox (README "Expressions"): its child
 * process ran past the time limit and was killed, ran out of memory, produced too large a
 * result, or died (limit `thread`, the name kept from the worker-thread sandbox). Retrying cannot help, so a step failing with it is not retried.
 *
 * It mirrors ExpressionError's fields (source, position, code, path) instead of extending it:
 * expressions.ts imports the sandbox, so extending its class here would be an import cycle.
 */
export class ExpressionLimitError extends Error {
  readonly source: string;
  readonly position: number | undefined = undefined;
  readonly code = EXPRESSION_LIMIT_CODE;
  readonly path: string | undefined = undefined;
  readonly limit: ExpressionLimit;

  constructor(
    message: string,
    options: { source: string; limit: ExpressionLimit; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ExpressionLimitError';
    this.source = options.source;
    this.limit = options.limit;
  }
}

/**
 * An ordinary evaluation failure reported by the worker (bad path, type error, the soft time or
 * depth guard). It carries jsonata's code and position, which expressions.ts turns into an
 * ExpressionError exactly as for an in-process failure.
 */
export class SandboxFailure extends Error {
  readonly code: string | undefined;
  readonly position: number | undefined;

  constructor(failure: { message: string; code?: string; position?: number }) {
    super(failure.message);
    this.name = 'SandboxFailure';
    this.code = failure.code;
    this.position = failure.position;
  }
}
