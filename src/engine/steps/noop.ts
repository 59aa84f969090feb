import {
  defineStepType,
  type StepInvocation,
  type StepOutcome,
  type StepTypeDefinition,
} from './types.js';

/** The `noop` step: passes its resolved config through, or its input when it has none. */
async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const { config, context } = invocation;
  return {
    kind: 'completed',
    output: Object.keys(config).length > 0 ? config : context.input,
  };
}

// Any config is fine; it becomes the output, which is why `$secret()` is not allowed in it.
export const noopStep: StepTypeDefinition = defineStepType({ type: 'noop', runsInline: true, run });
