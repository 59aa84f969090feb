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

/**
 * Session-level locks of maintenance passes (retention), one per pass: taken on a client the
 * pass holds for its whole length, so one process at a time runs it, and a process that dies
 * frees it with its connection. A namespace of their own, apart from the flow keys' and the
 * single-bigint locks of the sweep and the relay.
 */
const MAINTENANCE_NAMESPACE = 0x464d01;

/** Takes the pass's lock for the session of `client`; false when another session holds it. */
export async function tryMaintenanceLock(client: Queryable, pass: string): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS locked',
    [MAINTENANCE_NAMESPACE, pass],
  );
  return rows[0]?.locked === true;
}

export async function releaseMaintenanceLock(client: Queryable, pass: string): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1::int, hashtext($2))', [
    MAINTENANCE_NAMESPACE,
    pass,
  ]);
}
