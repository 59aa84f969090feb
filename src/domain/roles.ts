/**
 * Roles, weakest first: each includes the rights of every role before it (docs/ARCHITECTURE.md,
 * "Security").
 * viewer reads; operator also runs and steers executions, sends events and works tasks;
 * editor also changes workflow definitions; admin also manages API keys.
 */
export const ROLES = ['viewer', 'operator', 'editor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** True when `held` carries at least the rights of `required`. */
export function roleAtLeast(held: Role | null, required: Role): boolean {
  return held !== null && ROLES.indexOf(held) >= ROLES.indexOf(required);
}

/** The strongest role among `values`, ignoring anything that is not a role name. */
export function strongestRole(values: readonly unknown[]): Role | null {
  let best: Role | null = null;
  for (const value of values) {
    if (isRole(value) && (best === null || ROLES.indexOf(value) > ROLES.indexOf(best))) {
      best = value;
    }
  }
  return best;
}
