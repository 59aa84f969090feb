import createError from '@fastify/error';

/**
 * The catalogue of errors the service reports, each with a stable code and its HTTP status.
 * The API's error handler turns them into RFC 9457 problem details; nothing else maps errors.
 */

/** One problem found in a request, located by a JSON pointer-like path. */
export interface FieldProblem {
  path: string;
  message: string;
}

const ValidationErrorBase = createError('WF_ERR_VALIDATION', 'The request is invalid: %s', 400);

export class ValidationFailedError extends ValidationErrorBase {
  readonly errors: FieldProblem[];
  constructor(errors: FieldProblem[]) {
    const summary =
      errors.length === 1
        ? `${errors[0]?.path ? `${errors[0].path}: ` : ''}${errors[0]?.message}`
        : `${errors.length} problems found`;
    super(summary);
    this.errors = errors;
  }
}

export const WorkflowNotFoundError = createError(
  'WF_ERR_WORKFLOW_NOT_FOUND',
  'Workflow %s was not found',
  404,
);
export const ExecutionNotFoundError = createError(
  'WF_ERR_EXECUTION_NOT_FOUND',
  'Execution %s was not found',
  404,
);
export const RouteNotFoundError = createError(
  'WF_ERR_ROUTE_NOT_FOUND',
  'No route matches %s %s',
  404,
);
export const WorkflowNotRunnableError = createError(
  'WF_ERR_WORKFLOW_NOT_RUNNABLE',
  'Workflow %s is %s and cannot be executed; set its status to active or draft first',
  409,
);
export const WorkflowBusyError = createError(
  'WF_ERR_WORKFLOW_HAS_ACTIVE_EXECUTIONS',
  'Workflow %s has %s unfinished execution(s); cancel them before deleting it',
  409,
);
export const ExecutionStateError = createError(
  'WF_ERR_EXECUTION_STATE',
  'Execution %s is %s: %s',
  409,
);
export const DependencyUnavailableError = createError(
  'WF_ERR_DEPENDENCY_UNAVAILABLE',
  '%s is unavailable, try again shortly',
  503,
);
export const InvalidCursorError = createError(
  'WF_ERR_INVALID_CURSOR',
  'The cursor is not one this service issued: %s',
  400,
);
