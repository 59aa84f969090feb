import dns, { type LookupAddress, type LookupOptions } from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The outbound address guard for `http` steps: a step may reach public addresses, and
 * private, loopback or otherwise special ones only when its host is allowlisted.
 * Classification is pure parsing; the guarded lookup checks the addresses a connection will
 * actually use, so a name that re-resolves to an internal address (DNS rebinding) is refused.
 */

export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link-local'
  | 'unspecified'
  | 'reserved'
  | 'multicast';

/** Raised when the guard refuses a destination; no connection to it has been opened. */
export class SsrfBlockedError extends Error {
  readonly code = 'ERR_SSRF_BLOCKED';
  readonly hostname: string;
  readonly address: string | undefined;
  readonly addressClass: AddressClass | undefined;

  constructor(
    message: string,
    details: { hostname: string; address?: string; addressClass?: AddressClass },
  ) {
    super(message);
    this.name = 'SsrfBlockedError';
    this.hostname = details.hostname;
    this.address = details.address;
    this.addressClass = details.addressClass;
  }
}

/** An IPv4 range as [first octets..., prefix length], matched against a 32-bit address. */
type V4Range = readonly [a: number, b: number, c: number, d: number, prefix: number];

// IANA IPv4 special-purpose registry, most specific first where ranges nest.
const IPV4_RANGES: readonly (readonly [V4Range, AddressClass])[] = [
  [[0, 0, 0, 0, 8], 'unspecified'],
  [[10, 0, 0, 0, 8], 'private'],
  [[100, 64, 0, 0, 10], 'private'],
  [[127, 0, 0, 0, 8], 'loopback'],
  [[169, 254, 0, 0, 16], 'link-local'],
  [[172, 16, 0, 0, 12], 'private'],
  [[192, 0, 0, 0, 24], 'reserved'],
  [[192, 0, 2, 0, 24], 'reserved'],
  [[192, 88, 99, 0, 24], 'reserved'],
  [[192, 168, 0, 0, 16], 'private'],
  [[198, 18, 0, 0, 15], 'reserved'],
  [[198, 51, 100, 0, 24], 'reserved'],
  [[203, 0, 113, 0, 24], 'reserved'],
  [[224, 0, 0, 0, 4], 'multicast'],
  [[240, 0, 0, 0, 4], 'reserved'],
];

function v4Number(octets: readonly number[]): number {
  return (
    (((octets[0] ?? 0) << 24) |
      ((octets[1] ?? 0) << 16) |
      ((octets[2] ?? 0) << 8) |
      (octets[3] ?? 0)) >>>
    0
  );
}

function inV4Range(address: number, range: V4Range): boolean {
  const prefix = range[4];
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return (address & mask) >>> 0 === (v4Number(range) & mask) >>> 0;
}

function classifyV4(address: number): AddressClass {
  for (const [range, addressClass] of IPV4_RANGES) {
    if (inV4Range(address, range)) return addressClass;
  }
  return 'public';
}

/** Expands a valid IPv6 literal (no zone) into its eight 16-bit groups. */
function v6Groups(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  if (isIPv4(dotted)) {
    const octets = dotted.split('.').map(Number);
    tail.push((((octets[0] ?? 0) << 8) | (octets[1] ?? 0)) >>> 0);
    tail.push((((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) >>> 0);
    text = `${text.slice(0, lastColon + 1)}0`;
    // The placeholder group is replaced by the two groups of the dotted quad below.
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const [head = '', rest] = text.split('::');
  let groups: number[];
  if (rest === undefined) {
    groups = parse(head);
  } else {
    const left = parse(head);
    const right = parse(rest);
    const missing = 8 - left.length - right.length - (tail.length > 0 ? 1 : 0);
    groups = [...left, ...new Array<number>(Math.max(missing, 0)).fill(0), ...right];
  }
  if (tail.length > 0) groups = [...groups.slice(0, -1), ...tail];
  return groups;
}

function embeddedV4(high: number, low: number): number {
  return ((high << 16) | low) >>> 0;
}

function classifyV6(groups: readonly number[]): AddressClass {
  const g = (index: number): number => groups[index] ?? 0;
  const zeroUpTo = (end: number): boolean => groups.slice(0, end).every((group) => group === 0);

  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && g(7) === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d): the connection goes to the IPv4 address.
  if (zeroUpTo(5) && g(5) === 0xffff) return classifyV4(embeddedV4(g(6), g(7)));
  // NAT64 well-known prefix 64:ff9b::/96 translates to the embedded IPv4 address.
  if (g(0) === 0x64 && g(1) === 0xff9b && g(2) === 0 && g(3) === 0 && g(4) === 0 && g(5) === 0) {
    return classifyV4(embeddedV4(g(6), g(7)));
  }
  // Local-use NAT64 64:ff9b:1::/48.
  if (g(0) === 0x64 && g(1) === 0xff9b && g(2) === 1) return 'private';
  // Deprecated IPv4-compatible and other ::/8 forms: nothing legitimate to reach there.
  if (g(0) <= 0x00ff) return 'reserved';
  // Discard-only 100::/64.
  if (g(0) === 0x100 && g(1) === 0 && g(2) === 0 && g(3) === 0) return 'reserved';
  // 6to4 2002::/16 carries an IPv4 address in its next 32 bits.
  if (g(0) === 0x2002) return classifyV4(embeddedV4(g(1), g(2)));
  // IETF protocol assignments 2001::/23 (Teredo, benchmarking, ORCHID) and documentation
  // 2001:db8::/32, 3fff::/20; SRv6 SIDs 5f00::/16.
  if (g(0) === 0x2001 && g(1) < 0x200) return 'reserved';
  if (g(0) === 0x2001 && g(1) === 0xdb8) return 'reserved';
  if (g(0) === 0x3fff && g(1) < 0x1000) return 'reserved';
  if (g(0) === 0x5f00) return 'reserved';
  if ((g(0) & 0xfe00) === 0xfc00) return 'private';
  if ((g(0) & 0xffc0) === 0xfe80) return 'link-local';
  // Site-local fec0::/10 is deprecated but still routed inside some networks.
  if ((g(0) & 0xffc0) === 0xfec0) return 'private';
  if ((g(0) & 0xff00) === 0xff00) return 'multicast';
  // Only 2000::/3 is allocated global unicast; the rest is unassigned.
  if ((g(0) & 0xe000) !== 0x2000) return 'reserved';
  return 'public';
}

/**
 * Canonicalises an IP literal the way the WHATWG URL parser does (`2130706433`, `0177.0.0.1`
 * and `0x7f.1` all mean 127.0.0.1) and strips IPv6 brackets and zone ids. Returns undefined
 * when the text is not an IP literal.
 */
export function canonicalIp(address: string): string | undefined {
  let text = address.trim().toLowerCase();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone >= 0 && text.includes(':')) text = text.slice(0, zone);
  if (isIPv6(text)) return text;
  if (isIPv4(text)) return text;
  if (text.includes(':') || text === '') return undefined;
  try {
    const hostname = new URL(`http://${text}/`).hostname;
    return isIPv4(hostname) ? hostname : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Classifies an IPv4 or IPv6 literal. Text that is not an IP literal is `reserved`, so a
 * caller that forgets to resolve a name first fails closed.
 */
export function classifyAddress(address: string): AddressClass {
  const ip = canonicalIp(address);
  if (ip === undefined) return 'reserved';
  if (isIPv4(ip)) return classifyV4(v4Number(ip.split('.').map(Number)));
  return classifyV6(v6Groups(ip));
}

/** Lower-cases, drops a trailing dot and brackets, and canonicalises IP literals. */
function normaliseHost(host: string): string {
  const lower = host.trim().toLowerCase().replace(/\.$/, '');
  const ip = canonicalIp(lower);
  if (ip === undefined) return lower;
  return isIPv6(ip) ? v6Groups(ip).join(':') : ip;
}

/**
 * True when `hostname` is on the allowlist: an exact host name or IP literal, or a
 * `*.example.com` entry matching any subdomain (not `example.com` itself).
 */
export function isAllowedHost(hostname: string, allowlist: readonly string[]): boolean {
  if (allowlist.length === 0) return false;
  const host = normaliseHost(hostname);
  const isIpHost = canonicalIp(hostname) !== undefined;
  return allowlist.some((entry) => {
    const pattern = entry.trim().toLowerCase();
    if (pattern.startsWith('*.')) {
      return !isIpHost && host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
    }
    return pattern !== '' && normaliseHost(pattern) === host;
  });
}

/**
 * Refuses `address` (reached for `hostname`) unless it is public, or the host or the address
 * itself is allowlisted. Returns the refusal instead of throwing, for callback-style callers.
 */
export function checkDestination(
  hostname: string,
  address: string,
  allowlist: readonly string[],
): SsrfBlockedError | undefined {
  const addressClass = classifyAddress(address);
  if (addressClass === 'public') return undefined;
  if (isAllowedHost(hostname, allowlist) || isAllowedHost(address, allowlist)) return undefined;
  const via = normaliseHost(hostname) === normaliseHost(address) ? '' : ` (${hostname})`;
  return new SsrfBlockedError(
    `Refused to connect to ${addressClass} address ${address}${via}: not on the HTTP step allowlist`,
    { hostname, address, addressClass },
  );
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** Same shape as `dns.lookup` as `net.connect` calls it, with or without `all: true`. */
export type GuardedLookup = (
  hostname: string,
  options: LookupOptions,
  callback: LookupCallback,
) => void;

/**
 * Builds a `lookup` for `net.connect`/`http.request` that resolves with `dns.lookup` and
 * refuses the connection if any resolved address is not public and not allowlisted.
 * Checking at connect time, on the addresses actually used, is what defeats DNS rebinding.
 */
export function createGuardedLookup(allowlist: readonly string[]): GuardedLookup {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) {
        callback(error, options.all ? [] : '');
        return;
      }
      for (const entry of addresses) {
        const refusal = checkDestination(hostname, entry.address, allowlist);
        if (refusal) {
          callback(refusal, options.all ? [] : '');
          return;
        }
      }
      const first = addresses[0];
      if (options.all) {
        callback(null, addresses);
      } else if (first) {
        callback(null, first.address, first.family);
      } else {
        const notFound: NodeJS.ErrnoException = new Error(`No address found for ${hostname}`);
        notFound.code = 'ENOTFOUND';
        callback(notFound, '');
      }
    });
  };
}
