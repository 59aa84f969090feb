import type { z } from 'zod';

/**
 * The contract between the step runner and the built-in step types (one file per type).
 * A handler gets its config with every `{% %}` expression already resolved, does its work,
 * and either returns a result or throws a StepFailure that says whether a retry can help.
 */

/** What expressions see: docs/ARCHITECTURE.md, "Workflows and expressions". */
export interface ExpressionContext {
  input: unknown;
  /** The execution's labels, for flow-control keys. */
  labels?: Record<string, string>;
  steps: Record<string, { output: unknown; status: string }>;
  item?: unknown;
  index?: number;
  iteration: number;
  event?: unknown;
  execution: { id: string; workflow_id: string; workflow_version: number };
}

/** Settings a handler may need from the service configuration. */
export interface StepEnvironment {
  /** Hosts (names or IP literals, lower-case) that `http` steps may reach even when private. */
  httpAllowedHosts: readonly string[];
  httpMaxResponseBytes: number;
  expressionTimeoutMs: number;
}

/** The step being run, as its definition names it. */
export interface StepIdentity {
  id: string;
  type: string;
  agent_id: string | null;
}

export interface StepInvocation {
  step: StepIdentity;
  /** The step's config with expressions resolved. */
  config: Record<string, unknown>;
  context: ExpressionContext;
  /** Fires when the attempt times out or the execution is cancelled; handlers must stop. */
  signal: AbortSignal;
  attempt: number;
  env: StepEnvironment;
  /**
   * Every value `$secret()` gave while resolving `config` (possibly empty): what the handler
   * must keep to the origin it was meant for (the `http` step drops such headers on a redirect
   * elsewhere). The runner scrubs these values from whatever the attempt records.
   */
  secrets?: readonly string[];
  /** Set when the runner wakes a run that slept: the time it was due, so a relative sleep
   * (`seconds`) is not computed again from now. */
  sleptUntil?: Date;
}

export type StepOutcome =
  /** The step is done; `output` is recorded and seen by later steps. */
  | { kind: 'completed'; output: unknown }
  /** Durable sleep: the runner re-invokes the handler at `until` without holding a worker. */
  | { kind: 'sleep'; until: Date; output?: unknown }
  /** Waits for something outside the engine: an external worker, an event, a sub-workflow. */
  | { kind: 'wait'; reason: string; wait: WaitRequest };

/** What a waiting run waits for; the state manager parks it so the right party can resume it. */
export type WaitRequest =
  /** An external worker claims the task through the tasks API and completes or fails it. */
  | {
      kind: 'task';
      step_type: string;
      agent_id: string | null;
      config: Record<string, unknown>;
      input: unknown;
      lease_seconds: number;
    }
  /** POST /events with this type (and correlation key, when set) whose `match` holds. */
  | { kind: 'event'; event: string; correlation_key: string | null; match: string | null }
  /** An execution of another workflow; its output becomes this step's output. */
  | { kind: 'child'; workflow_id: string; input: Record<string, unknown> };

/**
 * Everything the service knows about one step type, declared in the type's own file, so a new
 * type is one file plus one registry line: the validator, the template resolver and the
 * worker read these fields instead of keeping per-type rules of their own.
 */
export interface StepTypeDefinition {
  readonly type: string;
  /**
   * The shape of the config as written in the definition, checked when a workflow is saved.
   * A `{% %}` template may stand where the schema expects any value (it is only known when the
   * step runs), so problems at or under a template are not reported. Undefined: anything goes
   * (external tasks, whose config belongs to their worker).
   */
  readonly configSchema: z.ZodType | undefined;
  /** Top-level config fields that hold plain JSONata source, checked for syntax when saved. */
  readonly expressionFields: readonly string[];
  /**
   * Whether `{% $secret('NAME') %}` may appear in the config: only for types whose output never
   * includes their resolved config (a `noop` would echo it).
   */
  readonly allowsSecrets: boolean;
  /**
   * Quick and in-process (no network, bounded by the expression time limit or by parking the
   * run): the worker whose commit makes such a step ready runs it at once, without a job.
   */
  readonly runsInline: boolean;
  run(invocation: StepInvocation): Promise<StepOutcome>;
}

/** The runtime half of a step type, as the runner and worker use it. */
export type StepHandler = StepTypeDefinition;

/** Declares a step type; the optional declarations default to the most restrictive choice. */
export function defineStepType(
  definition: Pick<StepTypeDefinition, 'type' | 'runsInline' | 'run'> &
    Partial<Pick<StepTypeDefinition, 'configSchema' | 'expressionFields' | 'allowsSecrets'>>,
): StepTypeDefinition {
  return Object.freeze({
    configSchema: undefined,
    expressionFields: [],
    allowsSecrets: false,
    ...definition,
  });
}

/**
 * Why an attempt failed, carrying retry information (modelled on Temporal's ApplicationFailure).
 * `type` is a stable machine-readable category, `retryable: false` fails the step at once,
 * `retryAfterMs` (e.g. from a 429's Retry-After) overrides the backoff for the next attempt.
 */
export class StepFailure extends Error {
  readonly type: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;

  constructor(
    message: string,
    options: { type: string; retryable: boolean; retryAfterMs?: number; details?: unknown },
  ) {
    super(message);
    this.name = 'StepFailure';
    this.type = options.type;
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details;
  }
}
