import { isIP } from 'node:net';

/**
 * TRUST_PROXY: which peers may tell the service, through `X-Forwarded-For`, who the client
 * is. Behind an ingress every connection comes from the ingress, so without it every client
 * would share one per-address failure budget; with a wrong one, any client could name itself.
 *
 * - `false` (default): trust no one; `request.ip` is the peer's address.
 * - `true`: trust every peer (only when nothing but the proxy can reach the service).
 * - a hop count `n`: trust the `n` nearest hops, whatever their addresses (the same caveat).
 * - a comma-separated list of addresses, CIDRs or the names `loopback`, `linklocal`,
 *   `uniquelocal`: trust those peers only, the safe choice.
 *
 * Kept free of imports from config.ts so that config.ts can validate with it.
 */
export type TrustProxy = boolean | number | string[];

/** What Fastify's `trustProxy` factory option receives. */
export type TrustProxyOption = boolean | string[] | ((address: string, hop: number) => boolean);

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether one list entry is an address, `address/prefix` or a named range. */
function isTrustedEntry(entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true;
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash === -1) return true;
  const prefix = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/** The parsed setting, or the reason it is refused. */
export function parseTrustProxy(
  raw: string,
): { ok: true; value: TrustProxy } | { ok: false; problem: string } {
  const value = raw.trim();
  const lower = value.toLowerCase();
  if (lower === 'true') return { ok: true, value: true };
  if (lower === 'false') return { ok: true, value: false };
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return hops <= 100
      ? { ok: true, value: hops }
      : { ok: false, problem: 'a hop count must be between 0 and 100' };
  }
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  const wrong = entries.filter((entry) => !isTrustedEntry(entry));
  if (entries.length === 0 || wrong.length > 0) {
    return {
      ok: false,
      problem: `must be true, false, a hop count, or comma-separated addresses/CIDRs (e.g. 10.0.0.0/8,127.0.0.1)${wrong.length > 0 ? `; not an address or CIDR: ${wrong.join(', ')}` : ''}`,
    };
  }
  return { ok: true, value: entries };
}

/**
 * Fastify's option for the setting. A hop count becomes a function: Fastify itself now treats
 * a number as "trust no one", which would silently ignore the setting.
 */
export function trustProxyOption(setting: TrustProxy): TrustProxyOption {
  if (typeof setting !== 'number') return setting;
  return (_address, hop) => hop < setting;
}
