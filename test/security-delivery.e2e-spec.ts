import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { FAST_WORKER_ENV, startInProcessWorker, WorkerProcess } from './helpers/worker.js';

const KEY = 'rotation-test-key-0123456789abcdefgh';

/** Secret rotation and the SSRF guard, end to end through the delivery engine. */
describe('security: delivery', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    // The all-in-one (npm start): API plus one worker, receivers on 127.0.0.1 allowed.
    app = await createTestApp(db.url, { ...FAST_WORKER_ENV, API_KEYS: KEY }, { withWorker: true });
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all(receivers.map((r) => r.close()));
    await db?.drop();
  });

  const api = () => request(app.getHttpServer());
  const auth = { Authorization: `Bearer ${KEY}` };
  const signed = (arrival: Receiver['arrivals'][number]) => ({
    'webhook-id': arrival.headers['webhook-id'] as string,
    'webhook-timestamp': arrival.headers['webhook-timestamp'] as string,
    'webhook-signature': arrival.headers['webhook-signature'] as string,
  });

  it('after a rotation, signs with the new and the old secret until the grace period ends', async () => {
    const hook = await Receiver.start();
    receivers.push(hook);
    const topic = (await api().post('/topics').set(auth).send({ name: 'rotation' }).expect(201))
      .body;
    const created = (
      await api()
        .post('/webhooks')
        .set(auth)
        .send({ topic_id: topic.id, url: hook.url })
        .expect(201)
    ).body;
    const oldSecret = created.secret as string;
    const { secret: newSecret } = (
      await api().post(`/webhooks/${created.id}/secret/rotate`).set(auth).expect(200)
    ).body;
    expect(newSecret).not.toBe(oldSecret);

    await api()
      .post('/topics/rotation/messages')
      .set(auth)
      .send({ partition_key: 'k', payload: { n: 1 } })
      .expect(201);
    const first = await eventually(() => hook.arrivals[0], { what: 'the first delivery' });
    expect(signed(first)['webhook-signature'].split(' ')).toHaveLength(2);
    // A receiver that still has only the old secret, and one that already has the new one.
    expect(() => new Webhook(oldSecret).verify(first.body, signed(first))).not.toThrow();
    expect(() => new Webhook(newSecret).verify(first.body, signed(first))).not.toThrow();

    // Grace over: only the new secret signs.
    await db.pool.query(
      `UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1`,
      [created.id],
    );
    await api()
      .post('/topics/rotation/messages')
      .set(auth)
      .send({ partition_key: 'k', payload: { n: 2 } })
      .expect(201);
    const second = await eventually(() => hook.arrivals[1], { what: 'the second delivery' });
    expect(signed(second)['webhook-signature'].split(' ')).toHaveLength(1);
    expect(() => new Webhook(newSecret).verify(second.body, signed(second))).not.toThrow();
    expect(() => new Webhook(oldSecret).verify(second.body, signed(second))).toThrow();
  });

  describe('with private networks refused (the default of node dist/worker.js)', () => {
    // A database of its own: the all-in-one's worker above (private networks allowed) must not
    // claim these deliveries.
    let own: TestDatabase;
    let worker: INestApplicationContext;
    beforeAll(async () => {
      own = await createTestDatabase();
      worker = await startInProcessWorker(own.url, {
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false',
        MAX_RETRIES: '1',
      });
    });
    afterAll(async () => {
      await worker?.close();
      await own?.drop();
    });

    it.each([
      ['a host name that resolves to loopback', 'localhost'],
      ['an IP literal (no DNS lookup at all)', '127.0.0.1'],
    ])('refuses to connect to %s and disables the webhook, saying why', async (_what, host) => {
      const hook = await Receiver.start();
      receivers.push(hook);
      const port = new URL(hook.url).port;
      const topic = await createTopic(own.pool);
      // Inserted by SQL, past the registration check, as if registered while allowed.
      const webhook = await createWebhook(own.pool, topic.id, `http://${host}:${port}/hook`);
      await insertMessage(own.pool, topic.id, 'k');
      const row = await eventually(
        async () => {
          const { rows } = await own.pool.query(
            `SELECT status, disabled_reason, disabled_detail FROM webhooks WHERE id = $1`,
            [webhook.id],
          );
          return rows[0]?.status === 'disabled' ? rows[0] : undefined;
        },
        { what: 'the webhook disabled' },
      );
      expect(row.disabled_reason).toBe('refused');
      expect(row.disabled_detail).toMatch(/refused with WEBHOOK_ALLOW_PRIVATE_NETWORKS=false/);
      if (host === 'localhost') {
        // The receiver's owner learns that the host is not public, not what it resolves to.
        expect(row.disabled_detail).toMatch(
          /host localhost resolves to an address that is not public/,
        );
        expect(row.disabled_detail).not.toMatch(/127\.0\.0\.1|::1|loopback/);
      } else {
        expect(row.disabled_detail).toMatch(/address 127\.0\.0\.1 is a loopback address/);
      }
      // Not the receiver's fault: no attempt recorded, no retry used, nothing sent.
      const delivery = await own.pool.query(
        `SELECT status, attempts, last_error FROM deliveries WHERE webhook_id = $1`,
        [webhook.id],
      );
      expect(delivery.rows).toEqual([{ status: 'pending', attempts: 0, last_error: null }]);
      expect(hook.arrivals).toHaveLength(0);
    });
  });

  describe('a worker stricter than the API that registered the webhooks', () => {
    let own: TestDatabase;
    const workers: WorkerProcess[] = [];
    beforeAll(async () => {
      own = await createTestDatabase();
      const topic = await createTopic(own.pool);
      // Inserted by SQL, as an API with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true would have accepted.
      await createWebhook(own.pool, topic.id, 'http://localhost:9/first');
      await createWebhook(own.pool, topic.id, 'http://127.0.0.1:9/second');
    });
    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await own?.drop();
    });

    it('warns once, in one line, at start', async () => {
      const worker = WorkerProcess.spawn(own.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'false' });
      workers.push(worker);
      const warning = /2 registered webhook\(s\) point at private or loopback addresses.*$/m;
      await eventually(() => warning.test(worker.output), {
        what: `the warning; output so far:\n${worker.output}`,
      });
      expect(worker.output.match(/registered webhook\(s\)/g)).toHaveLength(1);
      expect(worker.output).toMatch(/e\.g\. webhook \d+ \(host localhost\)/);
    });

    it('says nothing when it allows private networks too', async () => {
      const worker = WorkerProcess.spawn(own.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
      workers.push(worker);
      await eventually(() => worker.output.includes('delivering: concurrency'), {
        what: 'the worker to start',
      });
      expect(worker.output).not.toMatch(/registered webhook\(s\)/);
    });
  });
});
