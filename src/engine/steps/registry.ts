import { delayStep } from './delay.js';
import { externalTaskHandler } from './external.js';
import { httpStep } from './http.js';
import { noopStep } from './noop.js';
import { subworkflowStep } from './subworkflow.js';
import { transformStep } from './transform.js';
import type { StepHandler } from './types.js';
import { validateStep } from './validate.js';
import { waitForEventStep } from './wait-for-event.js';

/** The step types that run inside the service (DESIGN.md section 4). */
export const builtInStepHandlers: ReadonlyMap<string, StepHandler> = new Map(
  [
    noopStep,
    delayStep,
    transformStep,
    validateStep,
    httpStep,
    waitForEventStep,
    subworkflowStep,
  ].map((handler) => [handler.type, handler]),
);

/** The built-in handler for `type`; undefined means an external task, handled elsewhere. */
export function getStepHandler(type: string): StepHandler | undefined {
  return builtInStepHandlers.get(type);
}

/** The handler that runs a step of `type`: built in, or else an external task. */
export function stepHandlerFor(type: string): StepHandler {
  return getStepHandler(type) ?? externalTaskHandler(type);
}
