import { z } from 'zod';
import type { StepInvocation, StepOutcome, StepTypeDefinition } from './types.js';
import { defineStepType, StepFailure } from './types.js';

/**
 * The `delay` step: a durable timer. It answers `sleep` and the runner re-invokes it at
 * `until` without holding a worker; the call that finds the time reached completes.
 */

// An explicit offset is required: a local time would depend on the worker's time zone.
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$/;

const configSchema = z
  .looseObject({
    seconds: z
      .number({ error: 'must be a number >= 0' })
      .min(0, 'must be a number >= 0')
      .optional(),
    until: z
      .string({ error: 'must be an ISO 8601 date-time with an offset' })
      .regex(ISO_DATE_TIME, 'must be an ISO 8601 date-time with an offset')
      .optional(),
  })
  .refine(
    (config) => (config.seconds === undefined) !== (config.until === undefined),
    'set exactly one of `seconds` and `until`',
  );

function invalidConfig(message: string): StepFailure {
  return new StepFailure(`Invalid delay step config: ${message}`, {
    type: 'invalid_config',
    retryable: false,
  });
}

function targetTime(config: Record<string, unknown>, now: number): Date {
  const { seconds, until } = config;
  if ((seconds === undefined) === (until === undefined)) {
    throw invalidConfig('set exactly one of `seconds` and `until`');
  }
  let target: Date;
  if (seconds !== undefined) {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
      throw invalidConfig('`seconds` must be a number >= 0');
    }
    target = new Date(now + seconds * 1000);
  } else {
    if (typeof until !== 'string' || !ISO_DATE_TIME.test(until)) {
      throw invalidConfig('`until` must be an ISO 8601 date-time with an offset');
    }
    target = new Date(until);
  }
  if (Number.isNaN(target.getTime())) throw invalidConfig('the resulting time is out of range');
  return target;
}

/**
 * The wake-up time of the sleep this invocation resumes, if the runner says so. A `seconds`
 * delay can only complete on re-invocation if it knows when it was due: computed afresh, it
 * would always lie in the future. StepInvocation does not declare this field yet.
 */
function resumedSleep(invocation: StepInvocation): Date | undefined {
  const value = invocation.sleptUntil;
  return value instanceof Date && !Number.isNaN(value.getTime()) ? value : undefined;
}

async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const now = Date.now();
  const target = resumedSleep(invocation) ?? targetTime(invocation.config, now);
  const output = { slept_until: target.toISOString() };
  if (target.getTime() > now) return { kind: 'sleep', until: target, output };
  return { kind: 'completed', output };
}

export const delayStep: StepTypeDefinition = defineStepType({
  type: 'delay',
  configSchema,
  runsInline: true,
  run,
});
