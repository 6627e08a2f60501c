import type { LookupAddress, LookupOptions } from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  forbiddenAddressKind,
  webhookLookup,
  webhookUrlAddressProblem,
  WebhookAddressRefusedError,
} from './ssrf-guard.js';

type Answer = { error: NodeJS.ErrnoException | null; address: unknown; family?: number };

function lookup(allow: boolean, hostname: string, options: LookupOptions): Promise<Answer> {
  return new Promise((resolve) =>
    webhookLookup(allow)(hostname, options, (error, address, family) =>
      resolve({ error, address, family }),
    ),
  );
}

describe('SSRF guard: address classification', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'cloud metadata'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['100.127.255.255', 'shared (CGNAT)'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.251', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.192', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:a00:1', 'private'],
    ['::ffff:169.254.169.254', 'cloud metadata'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'], // NAT64 of 127.0.0.1
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b:1::1', 'private'],
    ['2002:7f00:1::1', 'loopback'], // 6to4 of 127.0.0.1
    ['2002:a9fe:a9fe::', 'cloud metadata'], // 6to4 of 169.254.169.254
    ['2001:db8::1', 'reserved'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
    ['100::1', 'reserved'],
    ['4000::1', 'reserved'], // outside 2000::/3
    ['not-an-ip', 'reserved'],
  ])('%s is %s', (address, kind) => {
    expect(forbiddenAddressKind(address)).toBe(kind);
  });

  it.each([
    '1.1.1.1',
    '8.8.8.8',
    '93.184.215.14',
    '100.63.255.255',
    '100.128.0.0',
    '172.15.255.255',
    '172.32.0.0',
    '169.253.255.255',
    '11.0.0.1',
    '2606:4700:4700::1111',
    '2a00:1450:4001:80b::200e',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2002:808:808::1',
  ])('%s is public', (address) => {
    expect(forbiddenAddressKind(address)).toBeUndefined();
  });

  it('checks IP-literal URLs, which node:net connects to without a lookup', () => {
    expect(webhookUrlAddressProblem('http://2130706433/', false)?.message).toMatch(
      /not a public address/,
    );
    expect(webhookUrlAddressProblem('http://[::ffff:7f00:1]:8080/x', false)?.message).toMatch(
      /not a public address/,
    );
    expect(webhookUrlAddressProblem('http://8.8.8.8/', false)).toBeUndefined();
    expect(webhookUrlAddressProblem('http://example.com/', false)).toBeUndefined();
    expect(webhookUrlAddressProblem('http://127.0.0.1/', true)).toBeUndefined();
  });
});

describe('SSRF guard: webhookLookup', () => {
  it('refuses localhost in the (err, address, family) form, with a clear message', async () => {
    const { error } = await lookup(false, 'localhost', {});
    expect(error).toBeInstanceOf(WebhookAddressRefusedError);
    // The caller learns that the host is not public; what it resolves to is for the log.
    expect(error!.message).toBe(
      'refused: webhook host is not a public address (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false)',
    );
    expect((error as WebhookAddressRefusedError).detail).toMatch(
      /^webhook host localhost resolves to a loopback address (127\.0\.0\.1|::1)$/,
    );
    expect(error!.code).toBe('ERR_WEBHOOK_ADDRESS_REFUSED');
  });

  it('refuses localhost in the all: true form and for a single family', async () => {
    expect((await lookup(false, 'localhost', { all: true })).error).toBeInstanceOf(
      WebhookAddressRefusedError,
    );
    expect((await lookup(false, 'localhost', { family: 4 })).error).toBeInstanceOf(
      WebhookAddressRefusedError,
    );
  });

  it('allows localhost with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true, in both forms', async () => {
    const one = await lookup(true, 'localhost', { family: 4 });
    expect(one).toEqual({ error: null, address: '127.0.0.1', family: 4 });
    const all = await lookup(true, 'localhost', { all: true });
    expect(all.error).toBeNull();
    expect(all.address as LookupAddress[]).toContainEqual({ address: '127.0.0.1', family: 4 });
  });

  it('passes a public address through, as the address that was checked', async () => {
    expect(await lookup(false, '8.8.8.8', {})).toEqual({
      error: null,
      address: '8.8.8.8',
      family: 4,
    });
    expect((await lookup(false, '8.8.8.8', { all: true })).address).toEqual([
      { address: '8.8.8.8', family: 4 },
    ]);
  });

  it('passes DNS failures on', async () => {
    const { error } = await lookup(false, 'no-such-host.invalid', {});
    expect(error?.code).toMatch(/ENOTFOUND|EAI_AGAIN/);
  });

  it('is what a real http.Agent connects through: refused, or allowed when configured', async () => {
    const server = http.createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as AddressInfo;
    const get = (allow: boolean, autoSelectFamily: boolean) =>
      new Promise<string>((resolve) => {
        const agent = new http.Agent({ lookup: webhookLookup(allow) });
        http
          .get(
            // autoSelectFamily is a net.connect option that @types/node's RequestOptions lacks.
            {
              host: 'localhost',
              port,
              agent,
              autoSelectFamily,
              family: autoSelectFamily ? 0 : 4,
            } as http.RequestOptions,
            (res) => {
              res.resume();
              resolve(`status ${res.statusCode}`);
            },
          )
          .on('error', (error) => resolve(error.message))
          .on('close', () => agent.destroy());
      });
    try {
      for (const autoSelectFamily of [false, true]) {
        expect(await get(false, autoSelectFamily)).toMatch(/^refused: .*not a public address/);
        expect(await get(true, autoSelectFamily)).toBe('status 200');
      }
    } finally {
      server.close();
    }
  });
});
