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
