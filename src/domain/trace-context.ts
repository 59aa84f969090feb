/**
 * An execution's W3C trace context as stored with it (README "Tracing"; migration
 * trace-context): `traceparent` names the execution span (its trace id and span id), `parent`
 * the caller's span it continues, if any. Every process parents step-attempt spans to it.
 */
export interface ExecutionTraceContext {
  traceparent: string;
  tracestate?: string;
  parent?: string;
  /** Set once the execution span was sent, by the one process that claimed to send it. */
  exported?: boolean;
}

/** What the process that ends an execution needs to send its span. */
export interface EndedExecutionTrace {
  trace: ExecutionTraceContext;
  workflowId: string;
  workflowVersion: number;
  status: string;
  startedAt: Date;
  completedAt: Date;
  error: string | null;
}
