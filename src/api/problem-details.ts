import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import {
  type FieldProblem,
  RouteNotFoundError,
  UpgradeConflictError,
  ValidationFailedError,
} from '../errors.js';
import type { ProblemDetails } from '../schemas/problem.js';

/**
 * Longest text a problem repeats from a request. Messages can quote what was sent (an
 * unknown key, a path); a problem must stay small whatever the request held.
 */
const MAX_DETAIL = 2000;
const MAX_FIELD_TEXT = 300;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (truncated)`;
}

/**
 * Errors of the infrastructure that mean "a dependency is down", not "the code is wrong":
 * they answer 503 with Retry-After so clients back off instead of seeing a 500.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08006',
  '3D000', // database does not exist (yet)
  '42P01', // table missing: migrations not applied yet
  '53000', // insufficient_resources
  '53200', // out_of_memory
  '53300', // too_many_connections: "sorry, too many clients already"
]);

function isDependencyFailure(error: Error & { code?: unknown }): boolean {
  if (typeof error.code === 'string' && UNAVAILABLE_CODES.has(error.code)) return true;
  const message = error.message ?? '';
  return (
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      message,
    ) ||
    /enableOfflineQueue|Connection is closed|Command timed out|MaxRetriesPerRequest/i.test(
      message,
    ) ||
    error.name === 'MaxRetriesPerRequestError'
  );
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function problemType(code: string): string {
  return `urn:workflow-service:problem:${code
    .toLowerCase()
    .replace(/^(wf_err_|fst_err_)/, '')
    .replaceAll('_', '-')}`;
}

export function sendProblem(
  reply: FastifyReply,
  status: number,
  code: string,
  detail: string,
  errors?: FieldProblem[],
): FastifyReply {
  const body: ProblemDetails = {
    type: problemType(code),
    title: TITLES[status] ?? 'Error',
    status,
    detail: clip(detail, MAX_DETAIL),
    instance: clip(reply.request.url, MAX_DETAIL),
    code,
    request_id: String(reply.request.id),
    ...(errors
      ? {
          errors: errors.slice(0, 1000).map((problem) => ({
            path: clip(problem.path, MAX_FIELD_TEXT),
            message: clip(problem.message, MAX_FIELD_TEXT),
          })),
        }
      : {}),
  };
  return reply.code(status).type('application/problem+json').send(body);
}

/**
 * Errors Fastify's router raises before any route or error handler runs (a path that is not
 * valid percent-encoding, an over-long path parameter); passed as the `frameworkErrors` option.
 */
export function sendFrameworkProblem(
  error: FastifyError,
  _request: unknown,
  reply: FastifyReply,
): void {
  void sendProblem(reply, error.statusCode ?? 400, error.code, error.message);
}

/** A 413's detail: the limit, and the field it is about when the route names one. */
function tooLarge(request: FastifyRequest): string {
  const { bodyLimit, config } = request.routeOptions;
  const field = config.bodyField;
  return field
    ? `The request body is larger than ${bodyLimit} bytes, this route's limit: ${field} may be at most MAX_INPUT_BYTES as JSON`
    : `The request body is larger than ${bodyLimit} bytes (MAX_BODY_BYTES)`;
}

/** The one place where errors become HTTP responses. */
export function registerProblemDetails(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const where = error.validationContext ?? 'request';
      const errors = error.validation.map((issue) => ({
        path: [where, ...issue.instancePath.split('/').filter(Boolean)].join('.'),
        message: issue.message ?? 'is invalid',
      }));
      return sendProblem(
        reply,
        400,
        'WF_ERR_VALIDATION',
        `The ${where} is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
        errors,
      );
    }
    if (error instanceof ValidationFailedError) {
      return sendProblem(reply, 400, error.code, error.message, error.errors);
    }
    if (error instanceof UpgradeConflictError) {
      return sendProblem(reply, 409, error.code, error.message, error.errors);
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = error.code ?? 'WF_ERR_BAD_REQUEST';
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        return sendProblem(reply, 413, error.code, tooLarge(request));
      }
      if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
        return sendProblem(
          reply,
          400,
          'WF_ERR_MALFORMED_JSON',
          `Malformed JSON body: ${error.message}`,
        );
      }
      return sendProblem(reply, status, code, error.message);
    }
    if (isDependencyFailure(error)) {
      request.log.warn({ err: error }, 'dependency unavailable');
      reply.header('retry-after', '5');
      return sendProblem(
        reply,
        503,
        'WF_ERR_DEPENDENCY_UNAVAILABLE',
        'A backing service (Postgres or Redis) is unavailable; retry shortly',
      );
    }
    if (status === 503) {
      reply.header('retry-after', '5');
      return sendProblem(reply, 503, error.code ?? 'WF_ERR_UNAVAILABLE', error.message);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(
      reply,
      500,
      'WF_ERR_INTERNAL',
      `An unexpected error occurred; quote request id ${request.id} when reporting it`,
    );
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new RouteNotFoundError(request.method, request.url.split('?')[0]);
    return sendProblem(reply, 404, error.code, error.message);
  });
}
