import { z } from 'zod';
import { defineStepType, StepFailure, type StepTypeDefinition } from './types.js';

const configSchema = z.looseObject({
  event: z
    .string({ error: 'must name the event type to wait for' })
    .min(1, 'must name the event type to wait for'),
  correlation_key: z.string({ error: 'must be a string' }).nullable().optional(),
});

/**
 * Waits for `POST /events` with type `config.event`, optionally only one carrying
 * `config.correlation_key` (usually a template such as `{% input.order_id %}`) and one for which
 * `config.match` (JSONata over `{event, input, steps, ...}`) holds. The event becomes the output.
 * The step's timeout bounds the wait.
 */
export const waitForEventStep: StepTypeDefinition = defineStepType({
  type: 'wait_for_event',
  configSchema,
  expressionFields: ['match'],
  runsInline: true,
  async run({ config }) {
    const { event, correlation_key: correlationKey, match } = config;
    if (typeof event !== 'string' || event.length === 0) {
      throw new StepFailure('config.event must name the event type to wait for', {
        type: 'invalid_config',
        retryable: false,
      });
    }
    if (
      correlationKey !== undefined &&
      correlationKey !== null &&
      typeof correlationKey !== 'string'
    ) {
      throw new StepFailure('config.correlation_key must resolve to a string', {
        type: 'invalid_config',
        retryable: false,
      });
    }
    return {
      kind: 'wait',
      reason: `waiting for event "${event}"${correlationKey ? ` with correlation key "${correlationKey}"` : ''}`,
      wait: {
        kind: 'event',
        event,
        correlation_key: typeof correlationKey === 'string' ? correlationKey : null,
        match: typeof match === 'string' && match.length > 0 ? match : null,
      },
    };
  },
});
