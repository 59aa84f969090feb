import { z } from 'zod';
import { defineStepType, StepFailure, type StepTypeDefinition } from './types.js';

const configSchema = z.looseObject({
  workflow_id: z
    .string({ error: 'must name the workflow to run' })
    .min(1, 'must name the workflow to run'),
  input: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
});

/**
 * Starts an execution of `config.workflow_id` with `config.input` (usually templates over the
 * parent's context) and waits for it; the child's output becomes this step's output, and its
 * failure fails this step (the step's retry policy then applies, starting a new child).
 */
export const subworkflowStep: StepTypeDefinition = defineStepType({
  type: 'subworkflow',
  configSchema,
  runsInline: true,
  async run({ config }) {
    const { workflow_id: workflowId, input } = config;
    if (typeof workflowId !== 'string' || workflowId.length === 0) {
      throw new StepFailure('config.workflow_id must name the workflow to run', {
        type: 'invalid_config',
        retryable: false,
      });
    }
    if (
      input !== undefined &&
      (typeof input !== 'object' || input === null || Array.isArray(input))
    ) {
      throw new StepFailure('config.input must resolve to an object', {
        type: 'invalid_config',
        retryable: false,
      });
    }
    return {
      kind: 'wait',
      reason: `waiting for sub-workflow ${workflowId}`,
      wait: {
        kind: 'child',
        workflow_id: workflowId,
        input: (input as Record<string, unknown>) ?? {},
      },
    };
  },
});
