import { LimitInUseError, LimitNotFoundError } from '../errors.js';
import {
  type LimitList,
  type LimitPutBody,
  type LimitView,
  MAX_LISTED_KEYS,
} from '../schemas/limits.js';
import { type Pool, type Queryable, withTransaction } from '../store/db.js';
import * as limitStore from '../store/limit-store.js';

export type { LimitList, LimitView } from '../schemas/limits.js';

/** How many workflow ids a refused delete names in its detail. */
const NAMED_IN_DETAIL = 20;

function toView(
  row: limitStore.LimitRow,
  usage: readonly limitStore.LimitKeyUsage[],
  usedBy: readonly string[],
): LimitView {
  return {
    name: row.name,
    max_concurrent: row.max_concurrent,
    rate:
      row.rate_limit !== null && row.rate_period_seconds !== null
        ? { limit: row.rate_limit, period_seconds: row.rate_period_seconds }
        : null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    in_use: usage[0]?.total_in_use ?? 0,
    waiting: usage[0]?.total_waiting ?? 0,
    keys: usage.map((key) => ({
      key: key.key === '' ? null : key.key,
      in_use: key.in_use,
      waiting: key.waiting,
    })),
    used_by: [...usedBy],
  };
}

/** Named limits shared across workflows (README "Flow control"): settings and usage. */
export class LimitManager {
  constructor(private readonly pool: Pool) {}

  /** Creates or replaces a limit as a whole; `created` says which. */
  async put(name: string, body: LimitPutBody): Promise<{ limit: LimitView; created: boolean }> {
    const { row, created } = await limitStore.upsertLimit(this.pool, {
      name,
      maxConcurrent: body.max_concurrent ?? null,
      rate: body.rate ? { limit: body.rate.limit, periodSeconds: body.rate.period_seconds } : null,
    });
    const [limit] = await this.views(this.pool, [row]);
    return { limit: limit as LimitView, created };
  }

  /** One limit with what is in use and waiting now, per key. */
  async get(name: string): Promise<LimitView> {
    const row = await limitStore.findLimit(this.pool, name);
    if (row === null) throw new LimitNotFoundError(name);
    const [limit] = await this.views(this.pool, [row]);
    return limit as LimitView;
  }

  /** Every limit, by name, with its usage. */
  async list(): Promise<LimitList> {
    return { items: await this.views(this.pool, await limitStore.listLimits(this.pool)) };
  }

  /**
   * Deletes a limit no workflow (but archived ones) names. The lock waits for a workflow
   * write that names it, so the check that follows sees that workflow once committed.
   */
  async delete(name: string): Promise<void> {
    await withTransaction(this.pool, async (tx) => {
      if (!(await limitStore.lockLimitForDelete(tx, name))) throw new LimitNotFoundError(name);
      const ids = (await limitStore.workflowsNamingLimits(tx, [name])).get(name) ?? [];
      if (ids.length > 0) {
        const named = ids.slice(0, NAMED_IN_DETAIL).join(', ');
        const more =
          ids.length > NAMED_IN_DETAIL ? ` and ${ids.length - NAMED_IN_DETAIL} more` : '';
        throw new LimitInUseError(name, ids.length, `${named}${more}`);
      }
      await limitStore.deleteLimit(tx, name);
    });
  }

  private async views(db: Queryable, rows: readonly limitStore.LimitRow[]): Promise<LimitView[]> {
    const names = rows.map((row) => row.name);
    const [usage, usedBy] = await Promise.all([
      limitStore.limitUsage(db, names, MAX_LISTED_KEYS),
      limitStore.workflowsNamingLimits(db, names),
    ]);
    const usageByName = new Map<string, limitStore.LimitKeyUsage[]>();
    for (const key of usage) {
      const keys = usageByName.get(key.name);
      if (keys) keys.push(key);
      else usageByName.set(key.name, [key]);
    }
    return rows.map((row) =>
      toView(row, usageByName.get(row.name) ?? [], usedBy.get(row.name) ?? []),
    );
  }
}
