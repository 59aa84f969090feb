import { z } from 'zod';

/**
 * Every setting of the service, read once from the environment at start.
 * Booleans are parsed explicitly because z.coerce.boolean() turns "false" into true.
 */
const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: z.string().url().default('postgresql://postgres@127.0.0.1:5432/workflow_service'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379/0'),
  LOG_LEVEL: z
    .string()
    .transform((level) => level.toLowerCase())
    .pipe(z.enum(['trace', 'debug', 'info', 'warning', 'warn', 'error', 'fatal', 'silent']))
    .transform((level) => (level === 'warning' ? 'warn' : level))
    .default('info'),
  SERVICE_PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  SERVICE_HOST: z.string().min(1).default('0.0.0.0'),
  SERVICE_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  /** Prefix of every Redis key (queues, cache): lets deployments or test files share a Redis. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only')
    .default('wf'),
  WORKER_CONCURRENCY: positiveInt.default(20),
  /** How often the recovery sweep looks for work that Postgres says is due. */
  SWEEP_INTERVAL_MS: positiveInt.default(2000),
  /** A queued step with no live job for this long is enqueued again by the sweep. */
  SWEEP_STALE_AFTER_MS: positiveInt.default(10000),
  /** BullMQ job lock: a worker that stops renewing it (killed, event loop blocked) loses the
   * job to another worker after this long. */
  JOB_LOCK_MS: positiveInt.default(30000),
  /** Test-only fault injection: `drop-enqueue` acts as if the process died between the commit of
   * a state change and the enqueue of its jobs, so the recovery sweep must finish the work. */
  FAULT_INJECTION: z.enum(['none', 'drop-enqueue']).default('none'),
  EXPRESSION_TIMEOUT_MS: positiveInt.default(1000),
  CACHE_TTL_SECONDS: positiveInt.default(300),
  DEPENDENCY_TIMEOUT_MS: positiveInt.default(1000),
  SHUTDOWN_GRACE_MS: positiveInt.default(10000),
  MIGRATE_ON_START: booleanFlag.default(true),

  MAX_STEPS: positiveInt.default(100),
  MAX_STEP_NAME_LENGTH: positiveInt.default(255),
  MAX_WORKFLOW_NAME_LENGTH: positiveInt.default(255),
  MAX_DESCRIPTION_LENGTH: positiveInt.default(1000),
  MAX_CONFIG_BYTES: positiveInt.default(1024 * 1024),
  MAX_METADATA_BYTES: positiveInt.default(1024 * 1024),
  MAX_TAGS: nonNegativeInt.default(20),
  MAX_INPUT_BYTES: positiveInt.default(1024 * 1024),
  /** Room for a workflow with 1 MB of config, 1 MB of metadata and its steps. */
  MAX_BODY_BYTES: positiveInt.default(4 * 1024 * 1024),

  HTTP_STEP_ALLOWED_HOSTS: z
    .string()
    .default('')
    .transform((value) =>
      value
        .split(',')
        .map((host) => host.trim().toLowerCase())
        .filter((host) => host.length > 0),
    ),
  HTTP_STEP_MAX_RESPONSE_BYTES: positiveInt.default(5 * 1024 * 1024),
});

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = envSchema
    .refine((config) => config.FAULT_INJECTION === 'none' || config.NODE_ENV !== 'production', {
      message: 'fault injection is refused in production',
      path: ['FAULT_INJECTION'],
    })
    .safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return `${name}=${JSON.stringify(present[name] ?? '')}: ${issue.message}`;
      }),
    );
  }
  return parsed.data;
}
