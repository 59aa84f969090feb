import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formatsModule from 'ajv-formats';
import { z } from 'zod';
import type { StepInvocation, StepOutcome, StepTypeDefinition } from './types.js';
import { defineStepType, StepFailure } from './types.js';

/**
 * The `validate` step: checks `config.data` (or the step input) against `config.schema`.
 * A mismatch is not retried: the same data fails the same schema again.
 */

const CACHE_LIMIT = 500;
const MAX_REPORTED_ERRORS = 5;

// ajv-formats is CommonJS; under NodeNext its default export arrives as `.default`.
const addFormats = formatsModule.default;

/*
 * allErrors reports every problem at once; strict: false accepts annotation keywords that
 * users' schemas commonly carry; addUsedSchema: false keeps a schema's `$id` from being
 * registered, so two workflows may use different schemas with the same `$id`.
 */
const options = { allErrors: true, strict: false, addUsedSchema: false } as const;
const draft2020 = new Ajv2020(options);
const draft07 = new Ajv(options);
addFormats(draft2020);
addFormats(draft07);

interface CachedValidator {
  validate: ValidateFunction;
  ajv: Ajv | Ajv2020;
  schema: object | boolean;
}

const configSchema = z.looseObject({
  schema: z.union([z.boolean(), z.record(z.string(), z.unknown())], {
    error: 'must be a JSON Schema object',
  }),
});

const validators = new Map<string, CachedValidator>();

function invalidConfig(message: string): StepFailure {
  return new StepFailure(`Invalid validate step config: ${message}`, {
    type: 'invalid_config',
    retryable: false,
  });
}

function dialectFor(schema: object | boolean): Ajv | Ajv2020 {
  if (typeof schema === 'boolean' || !('$schema' in schema)) return draft2020;
  return typeof schema.$schema === 'string' && /draft-07/.test(schema.$schema)
    ? draft07
    : draft2020;
}

function validatorFor(schema: object | boolean): ValidateFunction {
  const key = JSON.stringify(schema);
  const cached = validators.get(key);
  if (cached) {
    // Re-insert so the Map's insertion order doubles as least-recently-used order.
    validators.delete(key);
    validators.set(key, cached);
    return cached.validate;
  }
  const ajv = dialectFor(schema);
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    throw invalidConfig(`\`schema\` is not a usable JSON Schema: ${(error as Error).message}`);
  }
  validators.set(key, { validate, ajv, schema });
  if (validators.size > CACHE_LIMIT) {
    const [oldestKey, oldest] = validators.entries().next().value ?? [];
    if (oldestKey !== undefined && oldest) {
      validators.delete(oldestKey);
      // Ajv keeps every compiled schema too; without this the bound above would be moot.
      oldest.ajv.removeSchema(oldest.schema);
    }
  }
  return validate;
}

function describeErrors(errors: readonly ErrorObject[]): string {
  const shown = errors
    .slice(0, MAX_REPORTED_ERRORS)
    .map((error) => `${error.instancePath || '/'} ${error.message ?? 'is invalid'}`);
  const more =
    errors.length > MAX_REPORTED_ERRORS ? ` (+${errors.length - shown.length} more)` : '';
  return `${shown.join('; ')}${more}`;
}

async function run(invocation: StepInvocation): Promise<StepOutcome> {
  const { config, context } = invocation;
  const schema = config.schema;
  if (
    typeof schema !== 'boolean' &&
    (typeof schema !== 'object' || schema === null || Array.isArray(schema))
  ) {
    throw invalidConfig('`schema` must be a JSON Schema object');
  }
  const data = config.data === undefined ? context.input : config.data;
  const validate = validatorFor(schema);
  if (validate(data)) return { kind: 'completed', output: { valid: true, data } };
  const errors = validate.errors ?? [];
  throw new StepFailure(`Data does not match the schema: ${describeErrors(errors)}`, {
    type: 'validation_failed',
    retryable: false,
    details: errors.map(({ instancePath, keyword, message, params }) => ({
      instancePath,
      keyword,
      message,
      params,
    })),
  });
}

export const validateStep: StepTypeDefinition = defineStepType({
  type: 'validate',
  configSchema,
  runsInline: true,
  run,
});
