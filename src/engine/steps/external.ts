import { defineStepType, type StepTypeDefinition } from './types.js';

/** How long a claimed task stays with its worker without a heartbeat, unless the step's
 * config sets `lease_seconds`. */
export const DEFAULT_TASK_LEASE_SECONDS = 60;

/**
 * Any step type that is not built in is an external task: another service's worker claims it
 * through the tasks API, heartbeats, and completes or fails it. The run waits, holding no
 * worker, until then or until its timeout ends the attempt (retried per the step's policy).
 */
export function externalTaskHandler(stepType: string): StepTypeDefinition {
  // No config schema, no expression fields, no secrets: the config belongs to the worker.
  return defineStepType({
    type: stepType,
    // Running it only parks the run for the tasks API: as quick as a built-in.
    runsInline: true,
    async run({ step, config, context }) {
      const lease = config.lease_seconds;
      return {
        kind: 'wait',
        reason: `waiting for an external worker to claim a "${stepType}" task`,
        wait: {
          kind: 'task',
          step_type: stepType,
          agent_id: step.agent_id,
          config,
          input: context.input,
          lease_seconds:
            typeof lease === 'number' && lease > 0 && lease <= 86_400
              ? lease
              : DEFAULT_TASK_LEASE_SECONDS,
        },
      };
    },
  });
}
