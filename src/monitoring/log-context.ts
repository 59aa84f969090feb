/**
 * Log fields that tie engine log lines to executions and steps, so `executionId` and `stepId`
 * can be searched on every engine line.
 */

/** The distinct executions of a batch of step jobs. */
export function executionIdsOf(jobs: ReadonlyArray<{ executionId: string }>): string[] {
  return [...new Set(jobs.map((job) => job.executionId))];
}

/** The fields of one step job, for lines logged outside its child logger. */
export function jobLogContext(
  data: { executionId: string; stepId: string; runId: number; attempt: number } | undefined,
): Record<string, unknown> {
  if (!data) return {};
  return {
    executionId: data.executionId,
    stepId: data.stepId,
    runId: data.runId,
    attempt: data.attempt,
  };
}
