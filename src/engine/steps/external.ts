import type { StepHandler } from './types.js';

/**
 * Any step type that is not built in is an external task: another service's worker does it.
 * The run waits (holding no worker) until it is completed from outside or its timeout ends
 * the attempt, which is then retried per the step's retry settings.
 */
export function externalTaskHandler(stepType: string): StepHandler {
  return {
    type: stepType,
    async run() {
      return {
        kind: 'wait',
        reason: `waiting for an external worker to complete a "${stepType}" task`,
      };
    },
  };
}
