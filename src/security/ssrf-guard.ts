import { Logger } from '@nestjs/common';
import type { LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { remembered } from '../common/remembered.js';
import { createWebhookResolver, type ResolveHost } from './webhook-dns.js';

/**
 * The SSRF guard: webhook URLs are user input, and the worker POSTs to them from inside our
 * network. Unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, a webhook may only reach public unicast
 * addresses. The check runs twice: when a webhook is registered (a clear 400) and on every
 * connection the worker opens (webhookLookup), because DNS answers change after registration.
 */

/** What an address is, when it is not a public unicast one; the words go into the error. */
export type ForbiddenKind =
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unique-local'
  | 'multicast'
  | 'unspecified'
  | 'broadcast'
  | 'reserved'
  | 'shared (CGNAT)'
  | 'cloud metadata';

interface Range {
  base: bigint;
  bits: number;
  kind: ForbiddenKind;
}

// Our own table, from the IANA special-purpose registries (RFC 6890 and successors). The most
// specific range is listed first: the first match names the kind.
const IPV4_RANGES: ReadonlyArray<readonly [string, ForbiddenKind]> = [
  ['169.254.169.254/32', 'cloud metadata'], // AWS, GCP, Azure, OpenStack metadata
  ['255.255.255.255/32', 'broadcast'],
  ['0.0.0.0/8', 'unspecified'], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared (CGNAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments (192.0.0.192: Oracle metadata)
  ['192.0.2.0/24', 'reserved'], // TEST-NET-1
  ['192.88.99.0/24', 'reserved'], // 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking
  ['198.51.100.0/24', 'reserved'], // TEST-NET-2
  ['203.0.113.0/24', 'reserved'], // TEST-NET-3
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // class E
];

// IPv6 is refused outside 2000::/3 (global unicast) below; this table names the common kinds and
// the special ranges inside 2000::/3. IPv4 embeddings (mapped, NAT64, 6to4) are unwrapped first.
const IPV6_RANGES: ReadonlyArray<readonly [string, ForbiddenKind]> = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fd00:ec2::254/128', 'cloud metadata'], // AWS IMDS over IPv6
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['100::/64', 'reserved'], // discard-only
  ['2001::/32', 'reserved'], // Teredo: tunnels to an obfuscated IPv4 address
  ['2001:2::/48', 'reserved'], // benchmarking
  ['2001:10::/28', 'reserved'], // ORCHID
  ['2001:20::/28', 'reserved'], // ORCHIDv2
  ['2001:db8::/32', 'reserved'], // documentation
  ['3fff::/20', 'reserved'], // documentation
  ['5f00::/16', 'reserved'], // SRv6 SIDs
];

function parseIPv4(address: string): bigint {
  return address.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

/** An IPv6 address (node:net isIPv6 already said yes) as a 128-bit number. */
function parseIPv6(address: string): bigint {
  let text = address.split('%')[0]; // a zone id names an interface, not part of the address
  const embedded = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (embedded) {
    const v4 = parseIPv4(embedded[1]);
    text =
      text.slice(0, -embedded[1].length) +
      `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const missing = 8 - headParts.length - tailParts.length;
  const groups = [
    ...headParts,
    ...Array<string>(tail === undefined ? 0 : missing).fill('0'),
    ...tailParts,
  ];
  return groups.reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function compile(table: ReadonlyArray<readonly [string, ForbiddenKind]>, v6: boolean): Range[] {
  return table.map(([cidr, kind]) => {
    const [address, bits] = cidr.split('/');
    return { base: v6 ? parseIPv6(address) : parseIPv4(address), bits: Number(bits), kind };
  });
}

const V4 = compile(IPV4_RANGES, false);
const V6 = compile(IPV6_RANGES, true);

function inRange(value: bigint, width: number, range: Range): boolean {
  const shift = BigInt(width - range.bits);
  return value >> shift === range.base >> shift;
}

function classifyV4(value: bigint): ForbiddenKind | undefined {
  return V4.find((r) => inRange(value, 32, r))?.kind;
}

const top = (value: bigint, bits: number) => value >> BigInt(128 - bits);

function classifyV6(value: bigint): ForbiddenKind | undefined {
  const low32 = value & 0xffffffffn;
  // ::ffff:a.b.c.d (IPv4-mapped) and 64:ff9b::a.b.c.d (NAT64) reach a.b.c.d.
  if (top(value, 96) === 0xffffn || top(value, 96) === 0x64ff9b0000000000000000n) {
    return classifyV4(low32);
  }
  // ::a.b.c.d (the deprecated IPv4-compatible form), but :: and ::1 are named by the table.
  if (top(value, 96) === 0n && value > 1n) return classifyV4(low32) ?? 'reserved';
  // 2002:aabb:ccdd::/48 (6to4) reaches aa.bb.cc.dd.
  if (top(value, 16) === 0x2002n) return classifyV4((value >> 80n) & 0xffffffffn);
  const named = V6.find((r) => inRange(value, 128, r))?.kind;
  if (named) return named;
  return top(value, 3) === 1n ? undefined : 'reserved'; // only 2000::/3 is global unicast
}

/**
 * Why a literal IP address may not be a webhook target, or undefined when it may (a public
 * unicast address). Anything that is not an IP address is refused as 'reserved'.
 */
export function forbiddenAddressKind(address: string): ForbiddenKind | undefined {
  const family = isIP(address);
  if (family === 4) return classifyV4(parseIPv4(address));
  if (family === 6) return classifyV6(parseIPv6(address));
  return 'reserved';
}

const ALLOW_SETTING = 'WEBHOOK_ALLOW_PRIVATE_NETWORKS=false';

const logger = new Logger('SsrfGuard');

/**
 * The error of a refused address; `code` lets the worker tell it from a network failure. Its
 * message, which reaches the caller (a registration's 400, a delivery's last_error), says only
 * that the host is not public: which internal address a name resolves to is for our log alone.
 */
export class WebhookAddressRefusedError extends Error {
  override name = 'WebhookAddressRefusedError';
  readonly code = 'ERR_WEBHOOK_ADDRESS_REFUSED';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly kind: ForbiddenKind,
  ) {
    super(`refused: webhook host is not a public address (${ALLOW_SETTING})`);
  }

  /** What was refused, for the log. */
  get detail(): string {
    const article = /^[aeiou]/.test(this.kind) ? 'an' : 'a';
    return `webhook host ${this.host} resolves to ${article} ${this.kind} address ${this.address}`;
  }

  /**
   * What was refused and why, for the webhook's disabled_detail: an IP literal in the URL with
   * its kind; for a host name, only that it resolves to an address that is not public. Which
   * internal address a name resolves to stays in the worker's log (`detail`).
   */
  get publicDetail(): string {
    const article = /^[aeiou]/.test(this.kind) ? 'an' : 'a';
    const what =
      this.host === this.address
        ? `address ${this.address} is ${article} ${this.kind} address`
        : `host ${this.host} resolves to an address that is not public (the worker's log says which)`;
    return `${what}, refused with ${ALLOW_SETTING}`;
  }
}

/** The guard's refusal inside an error (the error itself or its cause), if that is what it is. */
export function addressRefusal(error: unknown): WebhookAddressRefusedError | undefined {
  const e = error as { cause?: unknown } | undefined;
  if (error instanceof WebhookAddressRefusedError) return error;
  return e?.cause instanceof WebhookAddressRefusedError ? e.cause : undefined;
}

/** The first forbidden address of a host's answer, as an error; its detail is logged here. */
function check(
  host: string,
  addresses: readonly LookupAddress[],
): WebhookAddressRefusedError | undefined {
  for (const { address } of addresses) {
    const kind = forbiddenAddressKind(address);
    if (kind) {
      const refused = new WebhookAddressRefusedError(host, address, kind);
      logger.warn(`refused: ${refused.detail}`);
      return refused;
    }
  }
  return undefined;
}

/** An IP-literal host's refusal; undefined for an allowed address or a host name. */
function literalHostRefusal(host: string): WebhookAddressRefusedError | undefined {
  const family = isIP(host);
  return family ? check(host, [{ address: host, family }]) : undefined;
}

/** A URL's host without the brackets of an IPv6 literal. */
export function urlHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** The system's DNS servers, for callers that were not given a resolver. */
const systemResolver = createWebhookResolver();

/**
 * The registration check: resolves the URL's host (all addresses) and returns why it is refused,
 * or undefined (also when it does not resolve: the lookup is bounded, see webhook-dns.ts). The
 * worker checks again at every connection (webhookLookup).
 */
export async function webhookHostProblem(
  url: URL,
  allowPrivateNetworks: boolean,
  resolve: ResolveHost = systemResolver,
): Promise<string | undefined> {
  if (allowPrivateNetworks) return undefined;
  const host = urlHost(url);
  if (isIP(host)) return literalHostRefusal(host)?.message;
  try {
    return check(host, await resolve(host))?.message;
  } catch {
    // A host that does not resolve (yet) is no danger: nothing can be reached through it, and
    // every connection checks its answer again. Refusing it would also make registration depend
    // on the DNS of wherever the API runs.
    return undefined;
  }
}

type LookupCallback = Parameters<LookupFunction>[2];

/**
 * The DNS lookup every webhook connection goes through (the `lookup` option of the delivery's
 * http/https agents). With private networks refused it resolves every address of the host (IPv4
 * and IPv6), refuses the connection when ANY of them is not public unicast, and hands back only
 * checked addresses, so the socket connects to exactly what was checked and a DNS answer that
 * changes between check and connect (rebinding) has nothing to slip through.
 *
 * Node calls a lookup in two forms: `(err, address, family)`, and with `options.all` (the
 * happy-eyeballs connect of autoSelectFamily) `(err, [{address, family}])`. Both are served.
 *
 * A URL whose host is an IP literal never reaches a lookup (node:net connects to it directly);
 * the worker checks those with `webhookUrlAddressProblem` before it sends. Names are resolved by
 * `resolve` (webhook-dns.ts: bounded, off libuv's thread pool), not by dns.lookup.
 */
export function webhookLookup(
  allowPrivateNetworks: boolean,
  resolve: ResolveHost = systemResolver,
): LookupFunction {
  return (hostname, options, callback) => {
    // Tolerate the two-argument dns.lookup form as well.
    if (typeof options === 'function') {
      callback = options as unknown as LookupCallback;
      options = {};
    }
    const wanted = typeof options?.family === 'number' ? options.family : 0;
    const fail = (error: NodeJS.ErrnoException) =>
      options?.all ? callback(error, []) : callback(error, '', 0);
    resolve(hostname).then((addresses) => {
      const refused = allowPrivateNetworks ? undefined : check(hostname, addresses);
      if (refused) return fail(refused);
      const usable = wanted === 0 ? addresses : addresses.filter((a) => a.family === wanted);
      if (usable.length === 0) {
        const notFound: NodeJS.ErrnoException = new Error(
          `webhook host ${hostname} has no IPv${wanted} address`,
        );
        notFound.code = 'ENOTFOUND';
        return fail(notFound);
      }
      if (options?.all) return callback(null, usable);
      callback(null, usable[0].address, usable[0].family);
    }, fail);
  };
}

/** The host of a webhook URL (null when it does not parse), parsed once per URL. */
const hostOfUrl = remembered((rawUrl): string | null => {
  try {
    return urlHost(new URL(rawUrl));
  } catch {
    return null;
  }
});

/**
 * The check for URLs whose host is an IP literal, which node:net connects to without a lookup:
 * what stops the worker sending to the URL (with `refusal` when the address policy refused its
 * address; a URL that does not parse has none), or undefined (also for host names:
 * webhookLookup checks those).
 */
export function webhookUrlAddressProblem(
  rawUrl: string,
  allowPrivateNetworks: boolean,
): { message: string; refusal?: WebhookAddressRefusedError } | undefined {
  if (allowPrivateNetworks) return undefined;
  const host = hostOfUrl(rawUrl);
  if (host === null) return { message: 'url is not a valid URL' };
  const refusal = literalHostRefusal(host);
  return refusal && { message: refusal.message, refusal };
}
