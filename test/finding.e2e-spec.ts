import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * Finding things (search by the fields of a support ticket) and health at a glance, against a
 * worker that delivered to one webhook and blocked on the other.
 */
describe('finding messages and deliveries', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let worker: INestApplicationContext;
  let ok: Receiver;
  let failing: Receiver;
  let http: ReturnType<typeof request>;
  let topicId: number;
  let delivered: number;
  let blocked: number;
  /** Message ids by partition and sequence: k1 1..3, k2 1..2. */
  const ids: Record<string, number[]> = { k1: [], k2: [] };

  beforeAll(async () => {
    db = await createTestDatabase();
    ok = await Receiver.start(() => ({ status: 204 }));
    failing = await Receiver.start(() => ({ status: 500, body: 'the receiver says no' }));
    app = await createTestApp(db.url);
    http = request(app.getHttpServer());
    topicId = (await createTopic(db.pool, 'orders')).id;
    const other = await createTopic(db.pool, 'other');
    delivered = (await createWebhook(db.pool, topicId, ok.url)).id;
    blocked = (await createWebhook(db.pool, topicId, failing.url)).id;
    await createWebhook(db.pool, other.id, ok.url);
    await db.pool.query(`UPDATE webhooks SET on_exhausted = 'block' WHERE id = $1`, [blocked]);
    let n = 0;
    for (const key of ['k1', 'k2', 'k1', 'k2', 'k1']) {
      n += 1;
      const res = await http
        .post('/topics/orders/messages')
        .send({ partition_key: key, payload: { n }, idempotency_key: `order-${n}` })
        .expect(201);
      ids[key].push(res.body.id);
    }
    // The same partition key in another topic: never in the orders topic's answers.
    await http
      .post('/topics/other/messages')
      .send({ partition_key: 'k1', payload: {} })
      .expect(201);
    worker = await startInProcessWorker(db.url, { MAX_RETRIES: '1' });
    await eventually(
      async () => {
        const { rows } = await db.pool.query(
          `SELECT count(*) FILTER (WHERE webhook_id = $1 AND status = 'delivered') AS delivered,
                  (SELECT count(*) FROM delivery_lines WHERE webhook_id = $2 AND blocked) AS blocked
           FROM deliveries`,
          [delivered, blocked],
        );
        return rows[0].delivered === '5' && rows[0].blocked === '2';
      },
      { what: 'webhook 1 delivered all 5, webhook 2 blocked on both lines', timeoutMs: 30_000 },
    );
  });
  afterAll(async () => {
    await worker?.close();
    await app?.close();
    await ok?.close();
    await failing?.close();
    await db?.drop();
  });

  const field = (rows: Array<Record<string, unknown>>, name: string) => rows.map((r) => r[name]);

  describe('GET /messages', () => {
    it("finds a topic's messages by partition key, in sequence order or newest first", async () => {
      const asc = await http.get('/messages?topic=orders&partition_key=k1').expect(200);
      expect(field(asc.body, 'id')).toEqual(ids.k1);
      expect(field(asc.body, 'sequence')).toEqual([1, 2, 3]);
      expect(asc.body[0]).toEqual({
        id: ids.k1[0],
        topic_id: topicId,
        partition_key: 'k1',
        sequence: 1,
        created_at: expect.any(String),
        idempotency_key: 'order-1',
        event_type: null,
      });
      const desc = await http
        .get(`/messages?topic_id=${topicId}&partition_key=k1&order=desc`)
        .expect(200);
      expect(field(desc.body, 'sequence')).toEqual([3, 2, 1]);
    });

    it('pages with limit and after in either order, following the Link header', async () => {
      for (const [order, expected] of [
        ['asc', ids.k1],
        ['desc', [...ids.k1].reverse()],
      ] as const) {
        const seen: number[] = [];
        let next: string | undefined =
          `/messages?topic=orders&partition_key=k1&order=${order}&limit=2`;
        while (next) {
          const res: request.Response = await http.get(next).expect(200);
          seen.push(...field(res.body, 'id').map(Number));
          next = /<([^>]+)>; rel="next"/.exec(res.headers.link ?? '')?.[1];
        }
        expect(seen).toEqual(expected);
      }
      const all = [...ids.k1, ...ids.k2].sort((a, b) => a - b);
      const newest = await http.get('/messages?topic=orders&order=desc&limit=2').expect(200);
      expect(field(newest.body, 'id')).toEqual([all[4], all[3]]);
      const older = await http.get(`/messages?topic=orders&order=desc&after=${all[3]}`).expect(200);
      expect(field(older.body, 'id')).toEqual([all[2], all[1], all[0]]);
      const oldest = await http.get(`/messages?topic=orders&after=${all[1]}`).expect(200);
      expect(field(oldest.body, 'id')).toEqual(all.slice(2));
    });

    it('finds the message of an idempotency key', async () => {
      const res = await http.get('/messages?topic=orders&idempotency_key=order-4').expect(200);
      expect(field(res.body, 'id')).toEqual([ids.k2[1]]);
      const none = await http.get('/messages?topic=other&idempotency_key=order-4').expect(200);
      expect(none.body).toEqual([]);
    });

    it('answers a clear 4xx for a missing, doubled or unknown topic and bad filters', async () => {
      expectErrorResponse(await http.get('/messages'), 400, /topic_id or topic/);
      expectErrorResponse(
        await http.get(`/messages?topic=orders&topic_id=${topicId}`),
        400,
        /topic_id or topic/,
      );
      expectErrorResponse(await http.get('/messages?topic=nope'), 404, /topic "nope"/);
      expectErrorResponse(await http.get('/messages?topic_id=999'), 404, /topic 999/);
      expectErrorResponse(await http.get('/messages?topic=orders&partition_key=a%20b'), 400);
      expectErrorResponse(await http.get('/messages?topic=orders&order=newest'), 400);
      expectErrorResponse(await http.get('/messages?topic=orders&colour=red'), 400);
    });
  });

  describe('GET /messages/{id}/deliveries', () => {
    it("answers the message's delivery to every webhook: the webhook-id a receiver saw", async () => {
      const seen = ok.where('webhook-partition-key', 'k2')[0].headers['webhook-id'];
      expect(seen).toBe(String(ids.k2[0]));
      const res = await http.get(`/messages/${seen}/deliveries`).expect(200);
      expect(res.body.map((d: Record<string, unknown>) => [d.webhook_id, d.status])).toEqual([
        [delivered, 'delivered'],
        [blocked, 'dead'],
      ]);
      expect(res.body[1]).toMatchObject({
        message_id: ids.k2[0],
        partition_key: 'k2',
        sequence: 1,
        attempts: 1,
        last_status_code: 500,
      });
      expectErrorResponse(await http.get('/messages/999999/deliveries'), 404, /message 999999/);
      expectErrorResponse(await http.get('/messages/x/deliveries'), 400);
    });

    it('GET /deliveries/{id} shows one delivery', async () => {
      const [first] = (await http.get(`/messages/${ids.k1[0]}/deliveries`).expect(200)).body;
      const res = await http.get(`/deliveries/${first.id}`).expect(200);
      expect(res.body).toEqual(first);
      expectErrorResponse(await http.get('/deliveries/999999'), 404, /delivery 999999/);
    });
  });

  describe('GET /webhooks/{id}/deliveries', () => {
    const list = async (webhookId: number, query: string) =>
      (await http.get(`/webhooks/${webhookId}/deliveries?${query}`).expect(200)).body as Array<
        Record<string, unknown>
      >;

    it('filters by status and partition key, newest first on request', async () => {
      const dead = await list(blocked, 'status=dead');
      expect(dead.map((d) => [d.partition_key, d.sequence])).toEqual([
        ['k1', 1],
        ['k2', 1],
      ]);
      expect((await list(blocked, 'status=dead&order=desc')).map((d) => d.id)).toEqual(
        dead.map((d) => d.id).reverse(),
      );
      const pending = await list(blocked, 'status=pending&order=desc');
      expect(pending.map((d) => [d.partition_key, d.sequence])).toEqual([
        ['k1', 3],
        ['k2', 2],
        ['k1', 2],
      ]);
      const line = await list(blocked, 'partition_key=k1');
      expect(line.map((d) => [d.sequence, d.status])).toEqual([
        [1, 'dead'],
        [2, 'pending'],
        [3, 'pending'],
      ]);
      expect(
        (await list(blocked, 'partition_key=k1&status=pending')).map((d) => d.sequence),
      ).toEqual([2, 3]);
      expect((await list(delivered, 'partition_key=k2&order=desc')).map((d) => d.sequence)).toEqual(
        [2, 1],
      );
      expect(await list(delivered, 'partition_key=nope')).toEqual([]);
    });

    it("pages a line in sequence order from the `after` delivery's place", async () => {
      const line = await list(blocked, 'partition_key=k1');
      const next = await list(blocked, `partition_key=k1&after=${line[0].id}&limit=1`);
      expect(next.map((d) => d.sequence)).toEqual([2]);
      const back = await list(blocked, `partition_key=k1&order=desc&after=${line[2].id}`);
      expect(back.map((d) => d.sequence)).toEqual([2, 1]);
      // A cursor from another line ends the list rather than mixing lines.
      const other = (await list(blocked, 'partition_key=k2'))[0];
      expect(await list(blocked, `partition_key=k1&after=${other.id}`)).toEqual([]);
    });

    it('answers 400 for a bad partition key or order, 404 for an unknown webhook', async () => {
      expectErrorResponse(
        await http.get(`/webhooks/${blocked}/deliveries?partition_key=`),
        400,
        /partition_key/,
      );
      expectErrorResponse(
        await http.get(`/webhooks/${blocked}/deliveries?partition_key=${'x'.repeat(256)}`),
        400,
      );
      expectErrorResponse(await http.get(`/webhooks/${blocked}/deliveries?order=up`), 400);
      expectErrorResponse(await http.get('/webhooks/999/deliveries?partition_key=k1'), 404);
    });
  });

  describe('GET /webhook-health', () => {
    it('shows per webhook status, pending, oldest pending age, dead, blocked and last error', async () => {
      const res = await http.get(`/webhook-health?topic_ids=${topicId}`).expect(200);
      expect(res.body).toEqual([
        {
          id: delivered,
          topic_id: topicId,
          topic: 'orders',
          url: ok.url,
          status: 'active',
          disabled_reason: null,
          on_exhausted: 'dead_letter',
          pending: 0,
          oldest_pending_age_seconds: 0,
          dead: 0,
          blocked_lines: 0,
          last_error: null,
          last_status_code: null,
          last_error_delivery_id: null,
        },
        {
          id: blocked,
          topic_id: topicId,
          topic: 'orders',
          url: failing.url,
          status: 'active',
          disabled_reason: null,
          on_exhausted: 'block',
          pending: 3,
          oldest_pending_age_seconds: expect.any(Number),
          dead: 2,
          blocked_lines: 2,
          last_error: expect.stringContaining('500'),
          last_status_code: 500,
          last_error_delivery_id: expect.any(Number),
        },
      ]);
      const { rows } = await db.pool.query(
        `SELECT id FROM deliveries WHERE webhook_id = $1 AND status = 'dead'`,
        [blocked],
      );
      expect(rows.map((r) => Number(r.id))).toContain(res.body[1].last_error_delivery_id);
    });

    it('pages every topic by webhook id, and refuses bad topic ids', async () => {
      const all = await http.get('/webhook-health').expect(200);
      expect(all.body).toHaveLength(3);
      const page = await http.get(`/webhook-health?limit=1&after=${delivered}`).expect(200);
      expect(field(page.body, 'id')).toEqual([blocked]);
      expect(page.headers.link).toContain(`after=${blocked}`);
      expectErrorResponse(await http.get('/webhook-health?topic_ids=1,x'), 400, /topic_ids/);
      expectErrorResponse(await http.get('/webhook-health?topic_ids=0'), 400);
    });
  });
});
