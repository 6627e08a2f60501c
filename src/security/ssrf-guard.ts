import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';

/**
 * The DNS lookup every webhook connection goes through (the `lookup` option of the delivery's
 * http/https agents). With private networks refused it will reject loopback, private,
 * link-local, unique-local and multicast addresses, so the address checked is the address
 * connected to.
 *
 * Placeholder until the SSRF guard lands: resolves as the system does.
 */
export function webhookLookup(allowPrivateNetworks: boolean): LookupFunction {
  void allowPrivateNetworks;
  return dnsLookup as unknown as LookupFunction;
}
