import { promises as dns, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';

/** Resolves a webhook's host name to every address it has. */
export type ResolveHost = (hostname: string) => Promise<LookupAddress[]>;

/**
 * c-ares waits this long for an answer, then asks again (and each server in turn); one lookup
 * gives up after about 4 s whatever the DNS does.
 */
export const DNS_TIMEOUT_MS = 1000;
const DNS_TRIES = 2;

/** No record of that type (ENODATA) or no such name (ENOTFOUND): an answer, not a failure. */
const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND']);

const LOOPBACK: LookupAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];

/**
 * Webhook host names are resolved by c-ares (a dns.promises.Resolver: A and AAAA queries on the
 * event loop, each bounded), never by dns.lookup. dns.lookup is getaddrinfo on one of libuv's 4
 * pool threads, for as long as the system resolver takes: a few webhook hosts whose DNS never
 * answers would hold all four, and every other lookup (the database's reconnect among them),
 * file access and crypto work would queue behind them.
 *
 * What differs from dns.lookup: /etc/hosts and the resolv.conf search domains are not used (a
 * webhook host must be a fully qualified name), except that `localhost` and names under
 * `.localhost` are loopback (RFC 6761), as getaddrinfo has them. `servers` (ip or ip:port)
 * replaces the system's DNS servers for webhooks only.
 *
 * A lookup fails (code ENOTFOUND when the name has no address, EAI_AGAIN otherwise, as
 * getaddrinfo reports them) when either query fails for any other reason than "no such record":
 * an answer with one family missing is never taken for the whole answer, so the SSRF guard sees
 * every address the name has, exactly as with dns.lookup.
 */
export function createWebhookResolver(servers: readonly string[] = []): ResolveHost {
  const resolver = new dns.Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (servers.length > 0) resolver.setServers(servers);
  return async (hostname) => {
    const family = isIP(hostname);
    if (family) return [{ address: hostname, family }];
    const name = hostname.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) return LOOPBACK;
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    const addresses: LookupAddress[] = [];
    for (const [answer, family] of [
      [v4, 4],
      [v6, 6],
    ] as const) {
      if (answer.status === 'fulfilled') {
        for (const address of answer.value) addresses.push({ address, family });
      } else if (!NO_RECORD.has((answer.reason as NodeJS.ErrnoException).code ?? '')) {
        const reason = answer.reason as NodeJS.ErrnoException;
        throw dnsError('EAI_AGAIN', `no answer for ${hostname} (${reason.code ?? reason.message})`);
      }
    }
    if (addresses.length === 0) throw dnsError('ENOTFOUND', `${hostname} has no A or AAAA record`);
    return addresses;
  };
}

function dnsError(code: string, message: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(message);
  error.code = code;
  return error;
}
