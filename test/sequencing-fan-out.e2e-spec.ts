import pg from 'pg';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage, withEchoTrigger } from './helpers/factories.js';
import { sequences } from './helpers/sequencing.js';
import { searchPathOption } from '../src/database/schema.js';

/**
 * The trigger fans every message out to the topic's webhooks and their lines, and wakes the
 * workers once per transaction (DESIGN §2).
 */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it("accepts the seed's SQL verbatim inside a transaction and fans out to every webhook", async () => {
    const topic = await createTopic(db.pool);
    const a = await createWebhook(db.pool, topic.id);
    const b = await createWebhook(db.pool, topic.id);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO messages (topic_id, partition_key, payload, created_at)
         VALUES (${topic.id}, 'user-42', '{"event": "order.created"}'::jsonb, now())`,
      );
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const { rows } = await db.pool.query(
      `SELECT d.webhook_id, d.sequence, d.status, m.payload
       FROM deliveries d JOIN messages m ON m.id = d.message_id
       WHERE d.topic_id = $1 ORDER BY d.webhook_id`,
      [topic.id],
    );
    expect(rows).toEqual([
      { webhook_id: a.id, sequence: '1', status: 'pending', payload: { event: 'order.created' } },
      { webhook_id: b.id, sequence: '1', status: 'pending', payload: { event: 'order.created' } },
    ]);
  });

  it('fans out a multi-row INSERT and an INSERT … SELECT of 10,000 rows', async () => {
    const topic = await createTopic(db.pool);
    const w1 = await createWebhook(db.pool, topic.id);
    const w2 = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       VALUES ($1, 'x', '{"i":1}'), ($1, 'y', '{"i":2}'), ($1, 'x', '{"i":3}')`,
      [topic.id],
    );
    expect(await sequences(db.pool, topic.id, 'x')).toEqual([1, 2]);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'p' || (g % 10), jsonb_build_object('g', g) FROM generate_series(1, 10000) g`,
      [topic.id],
    );
    const perKey = await db.pool.query<{ key: string; n: string; max: string }>(
      `SELECT partition_key AS key, count(*) AS n, max(sequence) AS max FROM messages
       WHERE topic_id = $1 AND partition_key LIKE 'p%' GROUP BY 1`,
      [topic.id],
    );
    expect(perKey.rows).toHaveLength(10);
    for (const row of perKey.rows) expect([row.n, row.max]).toEqual(['1000', '1000']);
    const lines = await db.pool.query<{ webhook_id: number; n: string }>(
      `SELECT webhook_id, count(*) AS n FROM delivery_lines WHERE topic_id = $1 GROUP BY 1 ORDER BY 1`,
      [topic.id],
    );
    expect(lines.rows).toEqual([
      { webhook_id: w1.id, n: '12' },
      { webhook_id: w2.id, n: '12' },
    ]);
    const deliveries = await db.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM deliveries WHERE topic_id = $1',
      [topic.id],
    );
    expect(Number(deliveries.rows[0].n)).toBe(2 * 10003);
  });

  it('gives a webhook created later only the messages inserted after it', async () => {
    const topic = await createTopic(db.pool);
    await insertMessage(db.pool, topic.id, 'k');
    await insertMessage(db.pool, topic.id, 'k');
    const late = await createWebhook(db.pool, topic.id);
    await insertMessage(db.pool, topic.id, 'k');
    const { rows } = await db.pool.query('SELECT sequence FROM deliveries WHERE webhook_id = $1', [
      late.id,
    ]);
    expect(rows).toEqual([{ sequence: '3' }]);
    const line = await db.pool.query(
      'SELECT head_sequence, tail_sequence FROM delivery_lines WHERE webhook_id = $1',
      [late.id],
    );
    expect(line.rows).toEqual([{ head_sequence: '3', tail_sequence: '3' }]);
  });

  it('keeps a message inserted by a trigger inside another insert on the line (issue 8, item 4)', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await withEchoTrigger(db.pool, async () => {
      await insertMessage(db.pool, topic.id, 'k', { echo: true });
      await insertMessage(db.pool, topic.id, 'k', { echo: true });
    });
    expect(await sequences(db.pool, topic.id, 'k')).toEqual([1, 2, 3, 4]);
    const { rows } = await db.pool.query(
      'SELECT head_sequence::int AS head, tail_sequence::int AS tail FROM delivery_lines WHERE webhook_id = $1',
      [webhook.id],
    );
    expect(rows).toEqual([{ head: 1, tail: 4 }]);
  });

  it('sends one NOTIFY per transaction, not one per row', async () => {
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id);
    const listener = new pg.Client({ connectionString: db.url, ...searchPathOption(TEST_SCHEMA) });
    await listener.connect();
    const received: string[] = [];
    listener.on('notification', (n) => received.push(n.channel));
    await listener.query('LISTEN pgwq_deliveries');
    try {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        for (let i = 0; i < 5; i++) await insertMessage(client, topic.id, `k${i % 2}`);
        await client.query(
          `INSERT INTO messages (topic_id, partition_key, payload)
           SELECT $1, 'bulk', '{}' FROM generate_series(1, 100)`,
          [topic.id],
        );
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      // A marker notification sent after the commit: once it arrives, everything before has.
      await db.pool.query(`SELECT pg_notify('pgwq_deliveries', 'marker')`);
      const deadline = Date.now() + 5000;
      while (received.length < 2 && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 10));
      }
      expect(received).toEqual(['pgwq_deliveries', 'pgwq_deliveries']);
    } finally {
      await listener.end();
    }
  });
});
