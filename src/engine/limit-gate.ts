import type { ClaimedRun } from '../domain/execution.js';
import { type LimitRefusal, limitKeyText } from '../domain/limits.js';
import type { StepDefinition } from '../domain/workflow-definition.js';
import { type Pool, type Queryable, withTransaction } from '../store/db.js';
import * as limitSlots from '../store/limit-slots.js';
import type { LimitRow } from '../store/limit-store.js';
import { evaluateKeyIn } from './flow-keys.js';
import type { RateTokens } from './rate-tokens.js';
import { type Effects, executionOfRun, jobOfRun, noEffects } from './state/effects.js';
import { claimContext } from './step-runner.js';

/**
 * The gate of named limits (docs/ARCHITECTURE.md, "Flow control"): a claimed run of a step
 * with `limits` enters them before its handler runs, or is turned away holding no worker.
 * Its keys are evaluated first (outside any transaction: an expression may take its time
 * limit); then, under every key's lock, each `max_concurrent` is checked against the runs
 * that hold the key and each `rate` gives a token. A limit deleted since the workflow was
 * saved no longer limits.
 */

/** How long a run waits when Redis cannot be asked for a token. */
const TOKEN_RETRY_MS = 1000;

export interface LimitGateOptions {
  pool: Pool;
  tokens: RateTokens;
  expressionTimeoutMs: number;
}

/** Entered (the run holds its slots), turned away (with the job to add once committed), or
 * stale (the claim no longer holds: nothing changed). */
export type GateAnswer =
  | { kind: 'entered'; keys: string[] }
  | { kind: 'turned_away'; effects: Effects }
  | { kind: 'stale' };

interface Evaluated {
  name: string;
  key: string | null;
  error: string | null;
  text: string;
}

interface Refusal {
  wait: LimitRefusal;
  reason: string;
  wakeAt: Date | null;
}

async function evaluateKeys(
  options: LimitGateOptions,
  claim: ClaimedRun,
  step: StepDefinition,
): Promise<Evaluated[]> {
  const context = claimContext(claim);
  return Promise.all(
    step.limits.map(async (limit) => {
      if (limit.key === null) {
        return { name: limit.name, key: null, error: null, text: limitKeyText(limit.name, null) };
      }
      const { key, error } = await evaluateKeyIn(limit.key, context, options.expressionTimeoutMs);
      return { name: limit.name, key, error, text: limitKeyText(limit.name, key) };
    }),
  );
}

const scopeOf = (limit: Evaluated): string =>
  limit.key === null ? `limit ${limit.name}` : `limit ${limit.name} (key ${limit.key})`;

const keyError = (limit: Evaluated) => (limit.error === null ? {} : { key_error: limit.error });

async function firstFullLimit(
  tx: Queryable,
  claim: ClaimedRun,
  evaluated: readonly Evaluated[],
  rows: ReadonlyMap<string, LimitRow>,
): Promise<Refusal | null> {
  for (const limit of evaluated) {
    const max = rows.get(limit.name)?.max_concurrent ?? null;
    if (max === null) continue;
    const inUse = await limitSlots.countHolders(tx, limit.text, claim.id);
    if (inUse < max) continue;
    return {
      wait: {
        kind: 'concurrency',
        name: limit.name,
        key: limit.key,
        in_use: inUse,
        max,
        ...keyError(limit),
      },
      reason: `waits for a slot of ${scopeOf(limit)}: ${inUse} of ${max} in use`,
      wakeAt: null,
    };
  }
  return null;
}

async function takeTokens(
  tokens: RateTokens,
  evaluated: readonly Evaluated[],
  rows: ReadonlyMap<string, LimitRow>,
): Promise<Refusal | null> {
  const taken: Array<{ limit: Evaluated; rate: { limit: number; period_seconds: number } }> = [];
  for (const limit of evaluated) {
    const row = rows.get(limit.name);
    if (!row || row.rate_limit === null || row.rate_period_seconds === null) continue;
    const rate = { limit: row.rate_limit, period_seconds: row.rate_period_seconds };
    const answer = await tokens
      .take(limit.name, limit.text, rate)
      .catch(() => ({ taken: false as const, retryAfterMs: TOKEN_RETRY_MS }));
    if (answer.taken) {
      taken.push({ limit, rate });
      continue;
    }
    await Promise.all(
      taken.map((held) =>
        tokens.giveBack(held.limit.name, held.limit.text, held.rate).catch(() => {}),
      ),
    );
    const wakeAt = new Date(Date.now() + answer.retryAfterMs);
    return {
      wait: {
        kind: 'rate',
        name: limit.name,
        key: limit.key,
        rate,
        eta: wakeAt.toISOString(),
        ...keyError(limit),
      },
      reason: `waits for a token of ${scopeOf(limit)}: ${rate.limit} per ${rate.period_seconds} s, next at ${wakeAt.toISOString()}`,
      wakeAt,
    };
  }
  return null;
}

/** Lets a claimed run of a step with limits in, or turns it away. */
export async function passLimitGate(
  options: LimitGateOptions,
  claim: ClaimedRun,
  step: StepDefinition,
): Promise<GateAnswer> {
  const evaluated = await evaluateKeys(options, claim, step);
  const keys = evaluated.map((limit) => limit.text);
  const leaseId = claim.lease_id as string;
  return withTransaction(options.pool, async (tx): Promise<GateAnswer> => {
    await limitSlots.lockLimitKeys(tx, keys);
    const names = evaluated.map((limit) => limit.name);
    const rows = new Map((await limitSlots.limitsNamed(tx, names)).map((row) => [row.name, row]));
    const refusal =
      (await firstFullLimit(tx, claim, evaluated, rows)) ??
      (await takeTokens(options.tokens, evaluated, rows));
    if (!refusal) {
      const entered = await limitSlots.enterLimits(tx, claim.id, leaseId, keys);
      return entered ? { kind: 'entered', keys } : { kind: 'stale' };
    }
    const { wait, reason, wakeAt } = refusal;
    const run = await limitSlots.turnAway(tx, claim.id, leaseId, keys, wait, reason, wakeAt);
    if (!run) return { kind: 'stale' };
    const effects = noEffects();
    if (wakeAt) {
      effects.jobs.push({ ...jobOfRun(executionOfRun(claim), run), runAt: wakeAt });
    }
    return { kind: 'turned_away', effects };
  });
}
