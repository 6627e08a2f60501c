import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { ReceiverProcess } from './helpers/receiver-process.js';
import { metadataSignatureHeader } from '../src/delivery/signature.js';
import { startInProcessWorker } from './helpers/worker.js';

const SECRET = 'whsec_' + Buffer.alloc(32, 7).toString('base64');
const OTHER_SECRET = 'whsec_' + Buffer.alloc(32, 8).toString('base64');

/** A request as the queue signs it, sent straight to the receiver. */
async function post(
  url: string,
  sequence: number,
  options: { partition?: string; secret?: string; resentAs?: number } = {},
): Promise<number> {
  const body = JSON.stringify({ n: sequence });
  const id = `msg_${sequence}`;
  const secret = options.secret ?? SECRET;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const metadata = {
    id,
    timestamp,
    topic: 'orders',
    partitionKey: options.partition ?? 'user-1',
    sequence: String(sequence),
    previousSequence: '',
    eventType: '',
  };
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-topic': metadata.topic,
    'webhook-partition-key': metadata.partitionKey,
    'webhook-sequence': metadata.sequence,
    'webhook-attempt': '1',
    'webhook-signature': new Webhook(secret).sign(id, new Date(Number(timestamp) * 1000), body),
    'webhook-metadata-signature': metadataSignatureHeader([secret], metadata),
  };
  // A captured delivery sent again with another sequence: every signature as captured.
  if (options.resentAs !== undefined) headers['webhook-sequence'] = String(options.resentAs);
  const response = await fetch(url, { method: 'POST', headers, body });
  return response.status;
}

describe('npm run receiver', () => {
  let db: TestDatabase;
  let worker: INestApplicationContext;
  const receivers: ReceiverProcess[] = [];
  const start = async (args: string[]) => {
    const receiver = await ReceiverProcess.start(args);
    receivers.push(receiver);
    return receiver;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '2' });
  });
  afterAll(async () => {
    await worker?.close();
    for (const receiver of receivers) await receiver.stop();
    await db?.drop();
  });

  const deliveries = async (webhookId: number) =>
    (
      await db.pool.query<{ sequence: string; status: string; last_status_code: number }>(
        `SELECT sequence, status, last_status_code FROM deliveries
         WHERE webhook_id = $1 ORDER BY partition_key, sequence`,
        [webhookId],
      )
    ).rows;

  it('verifies what a real worker sends, prints a line per arrival and a summary on Ctrl-C', async () => {
    const receiver = await start(['--secret', SECRET]);
    expect(receiver.output).toContain('signatures are checked with the given secret');
    const topic = await createTopic(db.pool, 'orders-ok');
    const webhook = await createWebhook(db.pool, topic.id, receiver.url, SECRET);
    for (const key of ['user-1', 'user-2', 'user-1', 'user-1', 'user-2']) {
      await insertMessage(db.pool, topic.id, key, { key });
    }
    await eventually(() => receiver.arrivals.length === 5, { what: '5 arrivals' });
    expect(receiver.arrivals.every((line) => line.includes('-> 204  in order'))).toBe(true);
    expect(receiver.arrivals[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} {2}orders-ok user-\d #1 \(try 1, id \d+\) {2}-> 204 {2}in order {2}\{"key": "user-\d"\}$/,
    );
    const { code, summary } = await receiver.interrupt();
    expect(code).toBe(0);
    expect(summary).toContain(
      'requests 5: accepted 5, failed on purpose 0, bad signatures 0, untracked 0',
    );
    expect(summary).toContain('partitions 2: duplicates 0, gaps 0, order breaks 0');
    expect(summary).toMatch(/orders-ok user-1 +3 +3 +0 +0 +0 +-/);
    expect(summary).toMatch(/orders-ok user-2 +2 +2 +0 +0 +0 +-/);
    // A message arrives before the worker's record of it commits.
    await eventually(
      async () => (await deliveries(webhook.id)).every((d) => d.status === 'delivered'),
      { what: 'the five recorded delivered' },
    );
  });

  it('answers a wrong signature with 401, which the sender records', async () => {
    const receiver = await start(['--secret', OTHER_SECRET]);
    const topic = await createTopic(db.pool, 'orders-forged');
    const webhook = await createWebhook(db.pool, topic.id, receiver.url, SECRET);
    await insertMessage(db.pool, topic.id, 'user-1');
    await eventually(async () => (await deliveries(webhook.id))[0]?.status === 'dead', {
      what: 'the delivery to be dead',
    });
    expect(await deliveries(webhook.id)).toEqual([
      { sequence: '1', status: 'dead', last_status_code: 401 },
    ]);
    expect(receiver.arrivals).toHaveLength(2);
    expect(receiver.arrivals[0]).toContain(
      '-> 401  BAD SIGNATURE: webhook-signature does not match the body',
    );
    const { summary } = await receiver.interrupt();
    expect(summary).toContain(
      'requests 2: accepted 0, failed on purpose 0, bad signatures 2, untracked 0',
    );
  });

  it('--fail-rate 1 fails every try (the worker retries, then dead-letters); the next receiver sees the gap', async () => {
    const failing = await start(['--secret', SECRET, '--fail-rate', '1', '--delay-ms', '20']);
    expect(failing.output).toContain('failing 100% of requests with 500 on purpose');
    expect(failing.output).toContain('answering each request after 20 ms');
    const topic = await createTopic(db.pool, 'orders-gap');
    const webhook = await createWebhook(db.pool, topic.id, failing.url, SECRET);
    await insertMessage(db.pool, topic.id, 'user-1');
    await eventually(async () => (await deliveries(webhook.id))[0]?.status === 'dead', {
      what: 'sequence 1 to be dead-lettered',
    });
    expect(failing.arrivals.map((line) => /#1 \(try (\d)/.exec(line)?.[1])).toEqual(['1', '2']);
    expect(failing.arrivals.every((l) => l.includes('-> 500  failed on purpose'))).toBe(true);
    expect((await failing.interrupt()).summary).toContain(
      'requests 2: accepted 0, failed on purpose 2, bad signatures 0, untracked 0',
    );

    const port = new URL(failing.url).port;
    const receiver = await start(['--secret', SECRET, '--port', port]);
    await insertMessage(db.pool, topic.id, 'user-1');
    await eventually(() => receiver.arrivals.length === 1, { what: 'sequence 2' });
    expect(receiver.arrivals[0]).toContain('#2 (try 1');
    expect(receiver.arrivals[0]).toContain('-> 204  GAP: #1 never arrived');
    const { summary } = await receiver.interrupt();
    expect(summary).toContain('partitions 1: duplicates 0, gaps 1, order breaks 0');
    expect(summary).toMatch(/orders-gap user-1 +1 +2 +0 +1 +0 +#1/);
  });

  it('refuses a captured delivery sent again with a forged webhook-sequence, reporting no gap', async () => {
    const receiver = await start(['--secret', SECRET]);
    expect(await post(receiver.url, 1, { partition: 'user-9' })).toBe(204);
    expect(await post(receiver.url, 1, { partition: 'user-9', resentAs: 1_000_000 })).toBe(401);
    await eventually(() => receiver.arrivals.length === 2, { what: '2 lines' });
    expect(receiver.arrivals[1]).toContain(
      '-> 401  BAD SIGNATURE: webhook-metadata-signature does not match the ordering headers',
    );
    const { summary } = await receiver.interrupt();
    expect(summary).toContain('partitions 1: duplicates 0, gaps 0, order breaks 0');
  });

  it('tells duplicates, gaps and order breaks apart, per partition', async () => {
    const receiver = await start(['--secret', SECRET]);
    for (const sequence of [1, 1, 4, 2, 5, 3, 3])
      expect(await post(receiver.url, sequence)).toBe(204);
    expect(await post(receiver.url, 1, { partition: 'user-2' })).toBe(204);
    expect(await post(receiver.url, 6, { secret: OTHER_SECRET })).toBe(401);
    await eventually(() => receiver.arrivals.length === 9, { what: '9 lines' });
    expect(receiver.arrivals.map((line) => line.split('  ')[3])).toEqual([
      'in order',
      'duplicate (seen before)',
      'GAP: #2-#3 never arrived',
      'ORDER BREAK: arrived after #4',
      'in order',
      'ORDER BREAK: arrived after #5',
      'duplicate (seen before)',
      'in order',
      'BAD SIGNATURE: webhook-signature does not match the body',
    ]);
    const { summary } = await receiver.interrupt();
    expect(summary).toContain(
      'requests 9: accepted 8, failed on purpose 0, bad signatures 1, untracked 0',
    );
    expect(summary).toContain('partitions 2: duplicates 2, gaps 1, order breaks 2');
    expect(summary).toMatch(/orders user-1 +7 +5 +2 +1 +2 +-/);
  });

  it('without a secret accepts anything and says signatures are not checked', async () => {
    const receiver = await start([]);
    expect(receiver.output).toContain(
      'no --secret, --secret-from or --new-secret: signatures are NOT checked',
    );
    expect(await post(receiver.url, 1, { secret: OTHER_SECRET })).toBe(204);
    await eventually(() => receiver.arrivals.length === 1, { what: 'its line' });
    expect(receiver.arrivals[0]).toContain('-> 204  in order');
  });

  it('--new-secret makes a secret, prints it and checks signatures with it', async () => {
    const receiver = await start(['--new-secret']);
    const secret = /\n(whsec_[A-Za-z0-9+/=]+)\n/.exec(receiver.output)?.[1];
    expect(secret).toBeDefined();
    expect(await post(receiver.url, 1, { secret })).toBe(204);
    expect(await post(receiver.url, 2)).toBe(401);
  });

  describe('--secret-from reads the secret through the API', () => {
    let api: NestExpressApplication;
    let apiUrl: string;
    const key = 'receiver-test-key-0123456789abcdefghij';

    beforeAll(async () => {
      api = await createTestApp(db.url, { API_KEYS: key });
      await api.listen(0, '127.0.0.1');
      apiUrl = `http://127.0.0.1:${(api.getHttpServer().address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await api?.close();
    });

    it('checks signatures with the secret of the given webhook', async () => {
      const topic = await createTopic(db.pool, 'orders-secret-from');
      const webhook = await createWebhook(db.pool, topic.id, 'http://127.0.0.1:9/', SECRET);
      const receiver = await start([
        '--secret-from',
        String(webhook.id),
        '--api',
        apiUrl,
        '--api-key',
        key,
      ]);
      expect(receiver.output).toContain(
        `signatures are checked with the secret of webhook ${webhook.id}`,
      );
      expect(await post(receiver.url, 1)).toBe(204);
      expect(await post(receiver.url, 2, { secret: OTHER_SECRET })).toBe(401);
    });

    it('stops with one clear line when the API refuses or the webhook does not exist', async () => {
      const noKey = await ReceiverProcess.run(['--secret-from', '1', '--api', apiUrl]);
      expect(noKey.code).toBe(2);
      expect(noKey.output).toContain(
        `[receiver] cannot start: GET ${apiUrl}/webhooks/1/secret answered 401: missing API key`,
      );
      expect(noKey.output).toContain('(pass one of its API_KEYS with --api-key)');
      const missing = await ReceiverProcess.run([
        '--secret-from',
        '999999',
        '--api',
        apiUrl,
        '--api-key',
        key,
      ]);
      expect(missing.code).toBe(2);
      expect(missing.output).toContain('answered 404: webhook 999999 does not exist');
    });
  });
});
