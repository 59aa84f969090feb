import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { type FieldProblem, ValidationFailedError } from '../errors.js';

/** Zod issues named as the error handler names schema problems: `body.rate.limit`. */
function problemsOf(part: 'params' | 'body', error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({
    path: [part, ...issue.path.map(String)].join('.'),
    message: issue.message,
  }));
}

/**
 * A preValidation hook for a route that takes a path parameter and a body. Fastify validates
 * the parts one after the other and stops at the first that fails, so a bad parameter would
 * hide every problem of the body: when the parameters fail, this judges both and refuses
 * with every problem; when they pass, Fastify validates the body as usual.
 */
export function judgeParamsWithBody(params: z.ZodType, body: z.ZodType) {
  return async (request: FastifyRequest): Promise<void> => {
    const judged = params.safeParse(request.params);
    if (judged.success) return;
    const judgedBody = body.safeParse(request.body);
    throw new ValidationFailedError([
      ...problemsOf('params', judged.error),
      ...(judgedBody.success ? [] : problemsOf('body', judgedBody.error)),
    ]);
  };
}
