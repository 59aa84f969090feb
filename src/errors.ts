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
export const WorkflowVersionNotFoundError = createError(
  'WF_ERR_WORKFLOW_VERSION_NOT_FOUND',
  'Workflow %s has no version %s',
  404,
);
/** An upgrade the compatibility gate refuses; `errors` lists every conflict, by step. */
const UpgradeConflictBase = createError(
  'WF_ERR_UPGRADE_CONFLICT',
  'Execution %s cannot move to version %s: %s',
  409,
);
export class UpgradeConflictError extends UpgradeConflictBase {
  readonly errors: FieldProblem[];
  constructor(executionId: string, version: number, errors: FieldProblem[]) {
    super(executionId, version, `${errors.length} conflict(s), listed in errors`);
    this.errors = errors;
  }
}
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
export const LimitNotFoundError = createError(
  'WF_ERR_LIMIT_NOT_FOUND',
  'No limit is named %s',
  404,
);
/** A limit named by workflows that are not archived cannot be deleted; %s lists them. */
export const LimitInUseError = createError(
  'WF_ERR_LIMIT_IN_USE',
  'Limit %s is named by the steps of %s workflow(s) that are not archived: %s. Remove it from their steps (or archive them) first',
  409,
);
export const OperationNotFoundError = createError(
  'WF_ERR_OPERATION_NOT_FOUND',
  'Bulk operation %s was not found',
  404,
);
export const OperationEndedError = createError(
  'WF_ERR_OPERATION_ENDED',
  'Bulk operation %s has already %s',
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

// Security (src/plugins/security/). One 401 for every authentication failure, so a caller
// cannot tell an unknown key from a revoked or expired one, or a forged token from an old one.
export const UnauthenticatedError = createError(
  'WF_ERR_UNAUTHENTICATED',
  'Authentication required: send a valid Authorization: Bearer <token> or X-API-Key header',
  401,
);
export const ForbiddenError = createError(
  'WF_ERR_FORBIDDEN',
  'This request needs the %s role; your credentials grant %s',
  403,
);
export const RateLimitedError = createError(
  'WF_ERR_RATE_LIMITED',
  'Too many requests; retry in %s second(s)',
  429,
);
export const ApiKeyNotFoundError = createError(
  'WF_ERR_API_KEY_NOT_FOUND',
  'API key %s was not found',
  404,
);
export const TaskNotFoundError = createError(
  'WF_ERR_TASK_NOT_FOUND',
  'No task was ever issued with this token',
  404,
);
export const TaskStaleError = createError(
  'WF_ERR_TASK_STALE',
  'This task token is no longer current (the task was completed, failed, timed out, retried or cancelled); %s',
  409,
);
export const ResourceNotFoundError = createError(
  'WF_ERR_NOT_FOUND',
  'Nothing exists at %s: the path holds characters no id can contain',
  404,
);
