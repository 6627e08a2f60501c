import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp, expectErrorResponse } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';

/**
 * Routing by event type (no worker: what the fan-out writes): a webhook's event_types decide
 * which messages it gets, from the API and from SQL alike, and each delivery stores the previous
 * sequence on its webhook's line.
 */
describe('event types and webhook filters', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;
  let http: ReturnType<typeof request>;
  let topicId: number;
  /** Webhook ids: everything, order.* and invoice.paid, exact user.created. */
  let all: number, orders: number, users: number;

  const createWebhook = async (path: string, eventTypes?: string[] | null) => {
    const body: Record<string, unknown> = { topic_id: topicId, url: `http://127.0.0.1:9/${path}` };
    if (eventTypes !== undefined) body.event_types = eventTypes;
    const res = await http.post('/webhooks').send(body);
    expect(res.status).toBe(201);
    return res.body as { id: number; event_types: string[] | null };
  };

  /** Each webhook's deliveries of a partition: [sequence, previous_sequence]. */
  const lines = async (partitionKey: string) => {
    const { rows } = await db.pool.query<{ webhook_id: number; seq: string; prev: string | null }>(
      `SELECT webhook_id, sequence AS seq, previous_sequence AS prev FROM deliveries
       WHERE partition_key = $1 ORDER BY webhook_id, sequence`,
      [partitionKey],
    );
    const byHook: Record<number, Array<[number, number | null]>> = {
      [all]: [],
      [orders]: [],
      [users]: [],
    };
    for (const r of rows)
      byHook[r.webhook_id].push([Number(r.seq), r.prev === null ? null : Number(r.prev)]);
    return byHook;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' });
    http = request(app.getHttpServer());
    topicId = (await http.post('/topics').send({ name: 'shop' })).body.id;
    all = (await createWebhook('all')).id;
    orders = (await createWebhook('orders', ['order.*', 'invoice.paid'])).id;
    users = (await createWebhook('users', ['user.created'])).id;
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('shows event_types on webhooks, null for one without a list', async () => {
    const list = await http.get(`/topics/${topicId}/webhooks`);
    expect(list.body.map((w: { event_types: unknown }) => w.event_types)).toEqual([
      null,
      ['order.*', 'invoice.paid'],
      ['user.created'],
    ]);
  });

  it('fans out by exact type and prefix, from the API, a batch, a plain INSERT and pgwq_publish alike', async () => {
    const api = (eventType?: string) =>
      http.post('/topics/shop/messages').send({
        partition_key: 'k1',
        payload: { eventType },
        ...(eventType ? { event_type: eventType } : {}),
      });
    const published = [
      await api('order.created'), // 1: all, orders
      await api('user.created'), // 2: all, users
      await api(), // 3: all only (untyped)
      await api('order.refund.done'), // 4: all, orders (prefix, two levels)
      await api('order'), // 5: all only (order.* needs the dot)
      await api('invoice.paid'), // 6: all, orders (exact)
      await api('user.created.v2'), // 7: all only (exact entry is not a prefix)
    ];
    expect(published.map((r) => [r.status, r.body.event_type ?? null])).toEqual([
      [201, 'order.created'],
      [201, 'user.created'],
      [201, null],
      [201, 'order.refund.done'],
      [201, 'order'],
      [201, 'invoice.paid'],
      [201, 'user.created.v2'],
    ]);
    expect(await lines('k1')).toEqual({
      [all]: [
        [1, null],
        [2, 1],
        [3, 2],
        [4, 3],
        [5, 4],
        [6, 5],
        [7, 6],
      ],
      [orders]: [
        [1, null],
        [4, 1],
        [6, 4],
      ],
      [users]: [[2, null]],
    });

    // The set path: one statement of several rows, several partitions.
    const batch = await http.post('/topics/shop/messages/batch').send({
      messages: [
        { partition_key: 'k1', payload: {}, event_type: 'order.paid' }, // 8
        { partition_key: 'k2', payload: {}, event_type: 'user.created' }, // k2 1
        { partition_key: 'k1', payload: {} }, // 9
        { partition_key: 'k1', payload: {}, event_type: 'order.shipped' }, // 10
        { partition_key: 'k2', payload: {}, event_type: 'order.paid' }, // k2 2
      ],
    });
    expect(batch.status).toBe(201);
    expect(batch.body.messages.map((m: { event_type: string | null }) => m.event_type)).toEqual([
      'order.paid',
      'user.created',
      null,
      'order.shipped',
      'order.paid',
    ]);
    const k1 = await lines('k1');
    expect(k1[orders]).toEqual([
      [1, null],
      [4, 1],
      [6, 4],
      [8, 6],
      [10, 8],
    ]);
    expect(k1[all].slice(-3)).toEqual([
      [8, 7],
      [9, 8],
      [10, 9],
    ]);
    expect(await lines('k2')).toEqual({
      [all]: [
        [1, null],
        [2, 1],
      ],
      [orders]: [[2, null]],
      [users]: [[1, null]],
    });

    // SQL producers: a plain INSERT with the column, several rows in one INSERT, pgwq_publish.
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload, event_type)
       VALUES ($1, 'k3', '{}', 'invoice.paid')`,
      [topicId],
    );
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload, event_type)
       VALUES ($1, 'k3', '{}', 'user.created'), ($1, 'k3', '{}', NULL), ($1, 'k3', '{}', 'order.x')`,
      [topicId],
    );
    await db.pool.query(`SELECT pgwq_publish('shop', 'k3', '{}', 'user.created')`);
    expect(await lines('k3')).toEqual({
      [all]: [
        [1, null],
        [2, 1],
        [3, 2],
        [4, 3],
        [5, 4],
      ],
      [orders]: [
        [1, null],
        [4, 1],
      ],
      [users]: [
        [2, null],
        [5, 2],
      ],
    });
    // A line's tail is the last sequence it got; its head its first pending one.
    const { rows } = await db.pool.query(
      `SELECT webhook_id, head_sequence::int AS head, tail_sequence::int AS tail FROM delivery_lines
       WHERE partition_key = 'k3' ORDER BY webhook_id`,
    );
    expect(rows).toEqual([
      { webhook_id: all, head: 1, tail: 5 },
      { webhook_id: orders, head: 1, tail: 4 },
      { webhook_id: users, head: 2, tail: 5 },
    ]);
  });

  it('applies a change of event_types to messages published after it, and null sends everything again', async () => {
    const publish = (eventType: string | null) =>
      db.pool.query(`SELECT pgwq_publish('shop', 'k4', '{}', $1)`, [eventType]);
    await publish('user.created'); // 1: all, users
    const patched = await http.patch(`/webhooks/${users}`).send({ event_types: ['user.*'] });
    expect(patched.status).toBe(200);
    expect(patched.body.event_types).toEqual(['user.*']);
    await publish('user.deleted'); // 2: all, users (new list)
    const cleared = await http.patch(`/webhooks/${users}`).send({ event_types: null });
    expect(cleared.body.event_types).toBeNull();
    await publish(null); // 3: all, users (no list: everything)
    const narrowed = await http.patch(`/webhooks/${users}`).send({ event_types: ['none.such'] });
    expect(narrowed.status).toBe(200);
    await publish('user.created'); // 4: all only
    expect(
      (await http.patch(`/webhooks/${users}`).send({ url: 'http://127.0.0.1:9/u2' })).body
        .event_types,
    ).toEqual(['none.such']);
    expect(await lines('k4')).toEqual({
      [all]: [
        [1, null],
        [2, 1],
        [3, 2],
        [4, 3],
      ],
      [orders]: [],
      [users]: [
        [1, null],
        [2, 1],
        [3, 2],
      ],
    });
  });

  it('a message that matches no webhook writes no delivery and no line', async () => {
    await db.pool.query(`UPDATE webhooks SET event_types = '{nothing}' WHERE id = $1`, [all]);
    try {
      await db.pool.query(`SELECT pgwq_publish('shop', 'k5', '{}', 'order')`);
      const { rows } = await db.pool.query(
        `SELECT (SELECT count(*)::int FROM deliveries WHERE partition_key = 'k5') AS deliveries,
                (SELECT count(*)::int FROM delivery_lines WHERE partition_key = 'k5') AS lines`,
      );
      expect(rows[0]).toEqual({ deliveries: 0, lines: 0 });
    } finally {
      await db.pool.query(`UPDATE webhooks SET event_types = NULL WHERE id = $1`, [all]);
    }
  });

  it('shows event_type and previous_sequence on messages and deliveries', async () => {
    const message = await http.get('/messages?topic=shop&partition_key=k1&limit=1');
    expect(message.body[0]).toMatchObject({ sequence: 1, event_type: 'order.created' });
    const shown = await http.get(`/messages/${message.body[0].id}`);
    expect(shown.body.event_type).toBe('order.created');
    const deliveries = await http.get(`/webhooks/${orders}/deliveries?partition_key=k1`);
    expect(
      deliveries.body.map(
        (d: { sequence: number; previous_sequence: number | null; event_type: string }) => [
          d.sequence,
          d.previous_sequence,
          d.event_type,
        ],
      ),
    ).toEqual([
      [1, null, 'order.created'],
      [4, 1, 'order.refund.done'],
      [6, 4, 'invoice.paid'],
      [8, 6, 'order.paid'],
      [10, 8, 'order.shipped'],
    ]);
    const one = await http.get(`/deliveries/${deliveries.body[1].id}`);
    expect(one.body).toMatchObject({ previous_sequence: 1, event_type: 'order.refund.done' });
    const ofMessage = await http.get(`/messages/${message.body[0].id}/deliveries`);
    expect(ofMessage.body.map((d: { event_type: string }) => d.event_type)).toEqual([
      'order.created',
      'order.created',
    ]);
  });

  it('keeps a filtered line on its next pending delivery when a head is recorded, not head + 1', async () => {
    // The order.* line of k1 holds 1, 4, 6, 8, 10. Claim it (the other webhooks left out).
    const { rows: claimed } = await db.pool.query(
      `SELECT * FROM pgwq_claim_lines(100, 30000, $1::int[], '{}', '{}', 100)`,
      [[all, users]],
    );
    const line = claimed.find((l) => l.partition_key === 'k1');
    expect(line).toMatchObject({
      webhook_id: orders,
      sequence: '1',
      previous_sequence: null,
      event_type: 'order.created',
    });
    const record = (head: string, deliveryId: string) =>
      db.pool.query(
        `SELECT * FROM pgwq_record_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                                            $13, $14, $15, $16)`,
        [
          [orders],
          ['k1'],
          [line.lease_token],
          [head],
          ['delivered'],
          [0],
          [deliveryId],
          [1],
          [204],
          [null],
          [new Date().toISOString()],
          [3],
          [null],
          [true],
          30000,
          true,
        ],
      );
    const first = (await record('1', line.delivery_id)).rows[0];
    expect(first).toMatchObject({
      fenced: true,
      sequence: '4',
      previous_sequence: '1',
      event_type: 'order.refund.done',
      lease_token: line.lease_token,
    });
    expect(first.delivery_id).not.toBeNull();
    const second = (await record('4', first.delivery_id)).rows[0];
    expect(second).toMatchObject({ fenced: true, sequence: '6', previous_sequence: '4' });
    // Given back, so the other tests' views are as before.
    await db.pool.query(
      `UPDATE delivery_lines SET lease_token = NULL, next_attempt_at = now() WHERE webhook_id = $1`,
      [orders],
    );
  });

  it('finds messages and deliveries by event_type', async () => {
    const messages = await http.get('/messages?topic=shop&event_type=user.created');
    expect(messages.status).toBe(200);
    expect(
      messages.body.map((m: { partition_key: string; sequence: number }) => [
        m.partition_key,
        m.sequence,
      ]),
    ).toEqual([
      ['k1', 2],
      ['k2', 1],
      ['k3', 2],
      ['k3', 5],
      ['k4', 1],
      ['k4', 4],
    ]);
    const newest = await http.get(
      `/messages?topic_id=${topicId}&event_type=user.created&order=desc&limit=2`,
    );
    expect(newest.body.map((m: { partition_key: string }) => m.partition_key)).toEqual([
      'k4',
      'k4',
    ]);
    const inPartition = await http.get(
      '/messages?topic=shop&partition_key=k1&event_type=order.paid',
    );
    expect(inPartition.body.map((m: { sequence: number }) => m.sequence)).toEqual([8]);
    const deliveries = await http.get(`/webhooks/${all}/deliveries?event_type=order.paid`);
    expect(
      deliveries.body.map((d: { partition_key: string; sequence: number }) => [
        d.partition_key,
        d.sequence,
      ]),
    ).toEqual([
      ['k1', 8],
      ['k2', 2],
    ]);
    const ofLine = await http.get(
      `/webhooks/${orders}/deliveries?partition_key=k1&event_type=order.paid`,
    );
    expect(ofLine.body.map((d: { sequence: number }) => d.sequence)).toEqual([8]);
    expect((await http.get(`/webhooks/${users}/deliveries?event_type=order.paid`)).body).toEqual(
      [],
    );
    expectErrorResponse(await http.get('/messages?topic=shop&event_type=a%20b'), 400, /event_type/);
    expectErrorResponse(
      await http.get(`/webhooks/${all}/deliveries?event_type=order.*`),
      400,
      /event_type/,
    );
  });
});
