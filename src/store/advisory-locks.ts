import type { Queryable } from './db.js';

/**
 * Transaction-scoped advisory locks on the keys of flow control (docs/ARCHITECTURE.md, "Flow
 * control"): two integers, a namespace per kind of key and the key's hash, a lock space apart
 * from the single-bigint locks (the sweep's). A hash collision only serialises two keys more
 * than needed.
 */
export const LOCK_NAMESPACES = {
  executionKey: 0x464c01,
  limitKey: 0x464c02,
  debounceKey: 0x464c03,
} as const;

/** Locks `text` in `namespace` until the transaction ends. */
export async function lockFlowKey(
  tx: Queryable,
  namespace: keyof typeof LOCK_NAMESPACES,
  text: string,
): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [
    LOCK_NAMESPACES[namespace],
    text,
  ]);
}

/** A workflow's key as one lock text. */
export const workflowKey = (workflowId: string, key: string): string => `${workflowId}\u001f${key}`;
