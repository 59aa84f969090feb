import { expect } from 'vitest';
import { StepFailure } from '../../src/engine/steps/types.js';

/** The StepFailure a handler's promise rejects with; the test fails if it resolves. */
export async function failureOf(promise: Promise<unknown>): Promise<StepFailure> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(StepFailure);
  return error as StepFailure;
}
