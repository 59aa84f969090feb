import { secretFunction } from '../secrets.js';
import { delayStep } from './delay.js';
import { externalTaskHandler } from './external.js';
import { httpStep } from './http.js';
import { noopStep } from './noop.js';
import { subworkflowStep } from './subworkflow.js';
import { transformStep } from './transform.js';
import type { StepHandler, StepTypeDefinition } from './types.js';
import { validateStep } from './validate.js';
import { waitForEventStep } from './wait-for-event.js';

/**
 * The step types that run inside the service (docs/ARCHITECTURE.md, "Step types"). A new type
 * is its own file under steps/ (see defineStepType) plus one line here.
 */
export const builtInStepHandlers: ReadonlyMap<string, StepTypeDefinition> = new Map(
  [
    noopStep,
    delayStep,
    transformStep,
    validateStep,
    httpStep,
    waitForEventStep,
    subworkflowStep,
  ].map((definition) => [definition.type, definition]),
);

/** Types added at run time (plugins, tests), beside the built-in ones they may not replace. */
const registered = new Map<string, StepTypeDefinition>();

/**
 * Adds a step type to this process; returns the function that removes it again. Every part of
 * the engine that asks the registry (validator, runner, worker) sees it from then on.
 */
export function registerStepType(definition: StepTypeDefinition): () => void {
  if (builtInStepHandlers.has(definition.type) || registered.has(definition.type)) {
    throw new Error(`step type "${definition.type}" is already registered`);
  }
  registered.set(definition.type, definition);
  return () => {
    if (registered.get(definition.type) === definition) registered.delete(definition.type);
  };
}

/** The definition of `type`; undefined means an external task, handled elsewhere. */
export function getStepHandler(type: string): StepTypeDefinition | undefined {
  return builtInStepHandlers.get(type) ?? registered.get(type);
}

/** The handler that runs a step of `type`: built in, or else an external task. */
export function stepHandlerFor(type: string): StepHandler {
  return getStepHandler(type) ?? externalTaskHandler(type);
}

function typesAllowingSecrets(): string[] {
  return [...builtInStepHandlers.values(), ...registered.values()]
    .filter((definition) => definition.allowsSecrets)
    .map((definition) => definition.type);
}

/**
 * The `bindings` of resolveTemplates for the config of a step of `stepType`: `$secret(name)`,
 * refused unless the type declares `allowsSecrets`. Every value it hands out is added to
 * `obtained`, so the runner can scrub it from what the attempt records.
 */
export function secretBindings(
  stepType: string,
  env: NodeJS.ProcessEnv = process.env,
  obtained?: Set<string>,
): Record<string, unknown> {
  return {
    secret: secretFunction({
      // Unknown types are external tasks, whose config goes to another worker: no secrets.
      allowed: getStepHandler(stepType)?.allowsSecrets ?? false,
      refusal: () =>
        `$secret() is only available in the config of ${typesAllowingSecrets().join(', ')} steps, whose output never includes their config`,
      env,
      ...(obtained ? { obtained } : {}),
    }),
  };
}
