/**
 * Named limits shared across workflows (README "Flow control"), as runs hold them: the
 * vocabulary the store and the runtime share. A limit caps the runs of the steps that name
 * it (`max_concurrent` at once, `rate` starts per period); a step's `limits: [{name, key?}]`
 * (`StepLimit`, src/domain/workflow-definition.ts) gives each value of its key expression a
 * budget of its own.
 */

/** `wait_kind` of a run that waits for a slot or a token of one of its limits. */
export const LIMIT_WAIT_KIND = 'limit';

/**
 * One element of a run's `limit_keys`: the limit's name, `:`, and the evaluated key as text
 * (the empty string for a limit named without a key). The usage reads split it at the first
 * `:`, which a name cannot contain (LIMIT_NAME_PATTERN).
 */
export function limitKeyText(name: string, key: string | null): string {
  return `${name}:${key ?? ''}`;
}

/**
 * Why a run of a step with limits is not running: no free slot of a limit's key
 * (`concurrency`: the run waits, holding no worker, until a holder ends) or no token
 * (`rate`: the run is queued again for `eta`). Written when the run is turned away, cleared
 * when it enters; the diagnosis reads it.
 */
/**
 * How often an attempt of a run was turned away by its limits: each time, its next job gets
 * an id of its own (jobOfRun). Kept once the run enters (the job that runs it has that id), and
 * void for a later attempt.
 */
export interface LimitTurns {
  attempt: number;
  turns: number;
}

export interface LimitWait extends LimitTurns {
  kind: 'concurrency' | 'rate';
  name: string;
  /** The evaluated key; null for a limit named without a key. */
  key: string | null;
  /** Why the key is `__error__`: the key expression's failure. */
  key_error?: string;
  in_use?: number;
  max?: number;
  rate?: { limit: number; period_seconds: number };
  /** When a token is due (rate). */
  eta?: string;
}

/** A limit's refusal, as the gate finds it; turnAway adds the turns. */
export type LimitRefusal = Omit<LimitWait, keyof LimitTurns>;

/** The turned-away wait `limit_wait` holds, if it holds one (not just the turns). */
export function limitWaitOf(value: LimitWait | LimitTurns | null): LimitWait | null {
  return value !== null && 'kind' in value ? value : null;
}
