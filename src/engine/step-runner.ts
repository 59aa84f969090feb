import type { ClaimedRun } from '../domain/execution.js';
import type { StepDefinition } from '../domain/workflow-definition.js';
import { scrubSecrets } from './secrets.js';
import { claimedExecution, expressionContext } from './state/iteration-runs.js';
import type { AttemptResult } from './state/state-manager.js';
import { stepHandlerFor } from './steps/registry.js';
import {
  type ExpressionContext,
  type StepEnvironment,
  StepFailure,
  type StepOutcome,
} from './steps/types.js';
import { resolveTemplates } from './templates.js';

class AttemptTimeout extends Error {
  constructor(seconds: number) {
    super(`attempt exceeded its timeout of ${seconds} s`);
    this.name = 'AttemptTimeout';
  }
}

/** What expressions of a claimed run see. */
export function claimContext(claim: ClaimedRun): ExpressionContext {
  return {
    ...expressionContext(claimedExecution(claim), claim.iteration, claim.iteration_runs, claim.id),
    ...(claim.item_index >= 0 ? { item: claim.item, index: claim.item_index } : {}),
  };
}

function resultOf(outcome: StepOutcome): AttemptResult {
  switch (outcome.kind) {
    case 'completed':
      return { kind: 'completed', output: outcome.output ?? null };
    case 'sleep':
      return { kind: 'sleep', until: outcome.until, output: outcome.output };
    case 'wait':
      return { kind: 'wait', reason: outcome.reason, wait: outcome.wait };
    default: {
      const unknown: never = outcome;
      throw new Error(`handler returned an unknown outcome: ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * What the attempt records, with every `$secret()` value it obtained replaced by `[secret]`,
 * whatever echoed it (a server's 404 page quoting the request, a JSONata cast error quoting
 * its input). Logs, history and stream events are built from the record, so this one place
 * keeps secrets out of all of them. A wait request is left whole: it is the step's own message
 * to whoever resumes it (a task's config goes to its worker), not something shown to viewers.
 */
function scrubbed(result: AttemptResult, secrets: ReadonlySet<string>): AttemptResult {
  if (secrets.size === 0) return result;
  switch (result.kind) {
    case 'completed':
      return { ...result, output: scrubSecrets(result.output, secrets) };
    case 'sleep':
      return { ...result, output: scrubSecrets(result.output, secrets) };
    case 'wait':
      return { ...result, reason: scrubSecrets(result.reason, secrets) };
    case 'failed':
      return { ...result, error: scrubSecrets(result.error, secrets) };
  }
}

/**
 * Runs one attempt of a step: resolves its config templates, calls its handler under the
 * attempt's deadline and the execution's abort signal, and classifies the outcome.
 * Returns null when the execution was stopped: there is nothing left to record.
 */
export async function runAttempt(
  step: StepDefinition,
  claim: ClaimedRun,
  env: StepEnvironment,
  stopSignal: AbortSignal,
  sleptUntil?: Date,
): Promise<AttemptResult | null> {
  const remainingMs = Math.max((claim.deadline_at?.getTime() ?? Date.now()) - Date.now(), 1);
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new AttemptTimeout(step.timeout_seconds)),
    remainingMs,
  );
  const signal = AbortSignal.any([stopSignal, timeout.signal]);
  const context = claimContext(claim);
  // Removed in finally: Node keeps a combined signal (and all it references) alive while it
  // has a listener, which leaked about 1 KiB per attempt.
  let onAbort: (() => void) | undefined;
  const secrets = new Set<string>();
  try {
    const config = (await resolveTemplates(step.config, context, {
      timeoutMs: env.expressionTimeoutMs,
      basePath: 'config',
      stepType: step.step_type,
      obtainedSecrets: secrets,
    })) as Record<string, unknown>;
    const handler = stepHandlerFor(step.step_type);
    // A handler that ignores its signal must still not hold the attempt past its deadline.
    const aborted = new Promise<never>((_, reject) => {
      // Already stopped (cancelled between claim and start): the listener would never fire.
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    const outcome = await Promise.race([
      handler.run({
        step: { id: step.id, type: step.step_type, agent_id: step.agent_id },
        config,
        context,
        signal,
        attempt: claim.attempt,
        env,
        secrets: [...secrets],
        ...(sleptUntil ? { sleptUntil } : {}),
      }),
      aborted,
    ]);
    return scrubbed(resultOf(outcome), secrets);
  } catch (error) {
    if (stopSignal.aborted) return null;
    return scrubbed({ kind: 'failed', ...classifyFailure(error, claim.attempt) }, secrets);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** Turns anything a handler threw into a recorded failure with its retry decision inputs. */
export function classifyFailure(
  error: unknown,
  attempt: number,
): Pick<Extract<AttemptResult, { kind: 'failed' }>, 'error' | 'retryAfterMs'> {
  if (error instanceof StepFailure) {
    return {
      error: {
        message: error.message,
        type: error.type,
        retryable: error.retryable,
        attempt,
        ...(error.details === undefined ? {} : { details: error.details }),
      },
      retryAfterMs: error.retryAfterMs,
    };
  }
  if (error instanceof AttemptTimeout) {
    return { error: { message: error.message, type: 'timeout', retryable: true, attempt } };
  }
  if (error instanceof Error && error.name === 'ExpressionError') {
    return {
      error: { message: error.message, type: 'expression_error', retryable: false, attempt },
    };
  }
  // Unknown errors are retried: a bug in a handler should not lose work when a retry helps.
  return {
    error: {
      message: error instanceof Error ? error.message : String(error),
      type: 'internal_error',
      retryable: true,
      attempt,
    },
  };
}
