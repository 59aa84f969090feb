import { z } from 'zod';

/** RFC 9457 problem details: the body of every error response. */
export const problemSchema = z
  .looseObject({
    type: z.string().describe('URI naming the kind of problem'),
    title: z.string().describe('Short summary of the HTTP status'),
    status: z.number().int().describe('HTTP status code'),
    detail: z.string().describe('What went wrong in this request'),
    instance: z.string().optional().describe('The request path'),
    code: z.string().describe('Stable error code, e.g. WF_ERR_VALIDATION'),
    request_id: z.string().describe('Quote it when reporting a problem'),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('Every problem found, for validation errors'),
  })
  .describe('Problem details (RFC 9457), sent as application/problem+json')
  .meta({
    example: {
      type: 'urn:workflow-service:problem:validation',
      title: 'Bad Request',
      status: 400,
      detail: 'The request is invalid: steps[1].dependencies[0]: no step has the id or name "x"',
      instance: '/workflows',
      code: 'WF_ERR_VALIDATION',
      request_id: '6f1c2a0e-4d1b-4bde-9a43-7f0f8e2b1c55',
      errors: [{ path: 'steps[1].dependencies[0]', message: 'no step has the id or name "x"' }],
    },
  });
export type ProblemDetails = z.infer<typeof problemSchema>;

/** The same problem schema, described for one status code in the OpenAPI document. */
export function problemResponse(description: string) {
  return problemSchema.describe(description);
}

/** A 400 whose `errors` list every problem of the request (validation). */
export const invalidRequestResponse = problemResponse(
  'The request is invalid; `errors` lists every problem',
);
