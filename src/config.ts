import { z } from 'zod';
import {
  AUTH_MODES,
  authProblems,
  JWT_ALGORITHMS,
  normalisePem,
} from './security/auth-settings.js';
import { parseTrustProxy, type TrustProxy } from './security/trust-proxy.js';

/**
 * Every setting of the service, read once from the environment at start.
 * Booleans are parsed explicitly because z.coerce.boolean() turns "false" into true.
 */
const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
const commaList = z.string().transform((value) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0),
);

function isOrigin(value: string): boolean {
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
}

/** Variables whose values never appear in a configuration error message. */
const SECRET_VARIABLE = /SECRET|PASSWORD|TOKEN/i;

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
  /** A wait_for_event step that starts waiting also takes an event that arrived up to this long
   * before (never one older than its execution), so an event racing the wait is not lost. */
  EVENT_BUFFER_MS: nonNegativeInt.default(60_000),
  /** How often each worker process looks for due cron schedules. */
  SCHEDULE_INTERVAL_MS: positiveInt.default(1000),
  EXPRESSION_TIMEOUT_MS: positiveInt.default(1000),
  /** Heap of each expression sandbox child process, in MB; a breach fails the step, not the service. */
  EXPRESSION_MEMORY_MB: positiveInt.min(16).default(64),
  /** Largest JSON result of a sandboxed expression, in bytes. */
  EXPRESSION_MAX_OUTPUT_BYTES: positiveInt.default(1024 * 1024),
  /** Executions a bulk operation acts on per batch (its lease is renewed between batches). */
  BULK_BATCH_SIZE: positiveInt.max(10_000).default(200),
  /** Actions of a bulk operation in flight at once in one process: its load on Postgres. */
  BULK_PARALLEL: positiveInt.max(64).default(8),
  CACHE_TTL_SECONDS: positiveInt.default(300),
  DEPENDENCY_TIMEOUT_MS: positiveInt.default(1000),
  SHUTDOWN_GRACE_MS: positiveInt.default(10000),
  MIGRATE_ON_START: booleanFlag.default(true),

  /** Claims in a row that find a step's attempt abandoned by its dead process before the run
   * fails as `crashed` instead of taking down one more worker (README "Limits"). */
  MAX_CRASHED_CLAIMS: positiveInt.default(3),
  /** Sub-workflow levels below a top-level execution; a deeper start fails its step. */
  MAX_SUBWORKFLOW_DEPTH: positiveInt.default(10),
  MAX_STEPS: positiveInt.default(100),
  MAX_STEP_NAME_LENGTH: positiveInt.default(255),
  MAX_WORKFLOW_NAME_LENGTH: positiveInt.default(255),
  MAX_DESCRIPTION_LENGTH: positiveInt.default(1000),
  MAX_CONFIG_BYTES: positiveInt.default(1024 * 1024),
  MAX_METADATA_BYTES: positiveInt.default(1024 * 1024),
  MAX_TAGS: nonNegativeInt.default(20),
  MAX_INPUT_BYTES: positiveInt.default(1024 * 1024),
  /** Items one for_each may fan out to: more fails the step (`for_each_limit`) before any
   * item run is written. */
  MAX_FOR_EACH_ITEMS: positiveInt.default(100_000),
  /** Room for a workflow with 1 MB of config, 1 MB of metadata and its steps. */
  MAX_BODY_BYTES: positiveInt.default(4 * 1024 * 1024),
  /** Levels a value in a JSON body may nest below the field holding it, checked on the raw
   * text before parsing (deeper bodies would exhaust the stack of recursive code). */
  MAX_JSON_DEPTH: positiveInt.max(10_000).default(64),

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

  // Monitoring (README "Monitoring").
  /** Lifetime of the cached GET /stats answer, in seconds (0: no cache). */
  STATS_CACHE_SECONDS: nonNegativeInt.max(60).default(5),
  /** Most recent executions of a workflow that its duration percentiles and per-step
   * statistics look back over (counts and the average cover every execution). */
  STATS_WINDOW: positiveInt.max(100_000).default(1000),
  /** Comment line sent on an idle execution stream this often, in milliseconds. */
  STREAM_HEARTBEAT_MS: positiveInt.default(15_000),
  /** Events kept per execution for clients resuming with Last-Event-ID (approximate). */
  STREAM_MAX_EVENTS: positiveInt.default(1000),
  /** An execution's event log is dropped this long after its last change, in seconds. */
  STREAM_RETENTION_SECONDS: positiveInt.default(3600),
  /** How often committed execution changes are relayed from Postgres to Redis, in milliseconds. */
  EVENT_RELAY_INTERVAL_MS: positiveInt.default(200),

  // Retention (README "Operations"; docs/ARCHITECTURE.md, "Retention").
  /** Days finished executions (with their step runs) and received events are kept; 0 keeps
   * everything. A workflow's `config.retention_days` overrides it for its executions. */
  RETENTION_DAYS: nonNegativeInt.default(30),
  /** How often a worker process purges what retention no longer keeps, in seconds. */
  RETENTION_INTERVAL_SECONDS: positiveInt.default(3600),

  // Security (docs/ARCHITECTURE.md, "Security"; README "Security"). Cross-field rules: authProblems().
  /** `none | api-key | jwt | both`; unset: `both` when a JWT key is set, else `none` (open). */
  AUTH_MODE: z.enum(AUTH_MODES).optional(),
  /** Development/test only: run open even when keys are configured. Refused in production. */
  AUTH_DISABLED: booleanFlag.default(false),
  /** HS256/384/512 shared secret; at least 32 characters (256 bits). */
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters (256 bits)').optional(),
  /** PEM public key (RSA, EC or Ed25519) for RS*, PS*, ES* or EdDSA tokens; `\n` escapes allowed. */
  JWT_PUBLIC_KEY: z.string().transform(normalisePem).optional(),
  /** Comma-separated pinned algorithms; default HS256 (secret) or the key's own (RS256, ES256). */
  JWT_ALGORITHMS: commaList
    .pipe(z.array(z.enum(JWT_ALGORITHMS, `must be one of ${JWT_ALGORITHMS.join(', ')}`)))
    .optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  /** Comma-separated accepted audiences; a token must name one of them. */
  JWT_AUDIENCE: commaList.optional(),
  /** Claim holding the caller's roles (array or space-separated string); dotted paths allowed. */
  JWT_ROLES_CLAIM: z.string().min(1).default('roles'),
  JWT_CLOCK_TOLERANCE_SECONDS: nonNegativeInt.max(300).default(5),
  /** Requests per caller (API key or token subject) per window; default 1000 (test: 1000000). */
  RATE_LIMIT_MAX: positiveInt.optional(),
  RATE_LIMIT_WINDOW_MS: positiveInt.default(60_000),
  /** Unauthenticated or failed requests per client IP per window; default 100 (test: 1000000). */
  RATE_LIMIT_IP_MAX: positiveInt.optional(),
  /** Peers trusted to name the client in X-Forwarded-For (src/security/trust-proxy.ts). */
  TRUST_PROXY: z
    .string()
    .transform((value, context): TrustProxy => {
      const parsed = parseTrustProxy(value);
      if (parsed.ok) return parsed.value;
      context.addIssue({ code: 'custom', message: parsed.problem });
      return z.NEVER;
    })
    .default(false),
  /** Comma-separated browser origins allowed by CORS (e.g. https://ops.example.com); empty: off. */
  CORS_ORIGINS: commaList
    .pipe(
      z.array(
        z
          .string()
          .refine(
            (origin) => origin === '*' || isOrigin(origin),
            'each entry must be an origin such as https://ops.example.com, or *',
          ),
      ),
    )
    .default([]),
  /** Serve /metrics without credentials (for a Prometheus inside the cluster). */
  METRICS_PUBLIC: booleanFlag.default(false),
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
    .superRefine((config, context) => {
      for (const problem of authProblems(config)) {
        context.addIssue({ code: 'custom', message: problem.message, path: [problem.path] });
      }
    })
    .safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        const shown = SECRET_VARIABLE.test(name) ? '[redacted]' : (present[name] ?? '');
        return `${name}=${JSON.stringify(shown)}: ${issue.message}`;
      }),
    );
  }
  return parsed.data;
}
