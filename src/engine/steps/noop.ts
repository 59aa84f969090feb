import type { StepHandler, StepInvocation, StepOutcome } from './types.js';

/** The `noop` step: passes its resolved config through, or its input when it has none. */
async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const { config, context } = invocation;
  return {
    kind: 'completed',
    output: Object.keys(config).length > 0 ? config : context.input,
  };
}

export const noopStep: StepHandler = { type: 'noop', runsInline: true, run };
