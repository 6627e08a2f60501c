import pg from 'pg';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';

/** The trigger's promises (DESIGN §2, §3), proved on a real PostgreSQL. */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  async function sequences(topicId: number, key: string): Promise<number[]> {
    const { rows } = await db.pool.query<{ sequence: string }>(
      'SELECT sequence FROM messages WHERE topic_id = $1 AND partition_key = $2 ORDER BY sequence',
      [topicId, key],
    );
    return rows.map((r) => Number(r.sequence));
  }

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

  it('leaves no gap when an insert rolls back', async () => {
    const topic = await createTopic(db.pool);
    await insertMessage(db.pool, topic.id, 'k');
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      expect((await insertMessage(client, topic.id, 'k')).sequence).toBe(2);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(2);
    expect(await sequences(topic.id, 'k')).toEqual([1, 2]);
  });

  it('numbers two transactions on one key in commit order: the second waits for the first', async () => {
    const topic = await createTopic(db.pool);
    const first = await db.pool.connect();
    const second = await db.pool.connect();
    try {
      await first.query('BEGIN');
      await second.query('BEGIN');
      const firstMessage = await insertMessage(first, topic.id, 'k', { from: 'first' });
      // The second insert must block on the partition's counter until the first commits.
      let secondDone = false;
      const secondInsert = insertMessage(second, topic.id, 'k', { from: 'second' }).then((m) => {
        secondDone = true;
        return m;
      });
      const { rows } = await db.pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND pid = $1`,
        [(second as unknown as { processID: number }).processID],
      );
      // Wait until PostgreSQL reports the second backend as waiting for a lock.
      for (let i = 0; i < 500 && Number(rows[0]?.n ?? 0) === 0; i++) {
        const r = await db.pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND pid = $1`,
          [(second as unknown as { processID: number }).processID],
        );
        rows[0] = r.rows[0];
        if (Number(r.rows[0].n) === 0) await new Promise((res) => setTimeout(res, 10));
      }
      expect(Number(rows[0].n)).toBeGreaterThan(0);
      expect(secondDone).toBe(false);
      await first.query('COMMIT');
      const secondMessage = await secondInsert;
      await second.query('COMMIT');
      expect(firstMessage.sequence).toBe(1);
      expect(secondMessage.sequence).toBe(2);
    } finally {
      first.release();
      second.release();
    }
  });

  it('gives sequences 1..200 to 8 concurrent producers × 25 messages, each producer in its own order', async () => {
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id);
    const pools = Array.from(
      { length: 8 },
      () => new pg.Pool({ connectionString: db.url, max: 1 }),
    );
    try {
      await Promise.all(
        pools.map(async (pool, producer) => {
          for (let i = 0; i < 25; i++) {
            await insertMessage(pool, topic.id, 'hot', { producer, i });
          }
        }),
      );
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const { rows } = await db.pool.query<{
      sequence: string;
      payload: { producer: number; i: number };
    }>('SELECT sequence, payload FROM messages WHERE topic_id = $1 ORDER BY sequence', [topic.id]);
    expect(rows.map((r) => Number(r.sequence))).toEqual(
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    for (let producer = 0; producer < 8; producer++) {
      const own = rows.filter((r) => r.payload.producer === producer).map((r) => r.payload.i);
      expect(own).toEqual(Array.from({ length: 25 }, (_, i) => i));
    }
    const deliveries = await db.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM deliveries WHERE topic_id = $1',
      [topic.id],
    );
    expect(Number(deliveries.rows[0].n)).toBe(200);
  });

  it('keeps keys and topics independent', async () => {
    const t1 = await createTopic(db.pool);
    const t2 = await createTopic(db.pool);
    await insertMessage(db.pool, t1.id, 'a');
    await insertMessage(db.pool, t1.id, 'a');
    await insertMessage(db.pool, t1.id, 'b');
    await insertMessage(db.pool, t2.id, 'a');
    expect(await sequences(t1.id, 'a')).toEqual([1, 2]);
    expect(await sequences(t1.id, 'b')).toEqual([1]);
    expect(await sequences(t2.id, 'a')).toEqual([1]);
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
    expect(await sequences(topic.id, 'x')).toEqual([1, 2]);
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

  it('numbers interleaved partitions in one statement, across statements and savepoints', async () => {
    const topic = await createTopic(db.pool);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, k, '{}' FROM unnest(ARRAY['a','a','b','a','b','b','a','a']) k`,
        [topic.id],
      );
      await insertMessage(client, topic.id, 'a');
      await client.query('SAVEPOINT s');
      await client.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, 'b', '{}' FROM generate_series(1, 3)`,
        [topic.id],
      );
      await client.query('ROLLBACK TO SAVEPOINT s');
      await insertMessage(client, topic.id, 'b');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await sequences(topic.id, 'a')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await sequences(topic.id, 'b')).toEqual([1, 2, 3, 4]);
    expect((await insertMessage(db.pool, topic.id, 'a')).sequence).toBe(7);
    expect((await insertMessage(db.pool, topic.id, 'b')).sequence).toBe(5);
  });

  it('numbers 20,000 rows of one partition in one INSERT … SELECT', async () => {
    const topic = await createTopic(db.pool);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'bulk', jsonb_build_object('g', g) FROM generate_series(1, 20000) g`,
      [topic.id],
    );
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n, min(sequence)::int AS lo, max(sequence)::int AS hi,
              bool_and((payload->>'g')::int = sequence) AS in_order
       FROM messages WHERE topic_id = $1`,
      [topic.id],
    );
    expect(rows[0]).toEqual({ n: 20000, lo: 1, hi: 20000, in_order: true });
    expect((await insertMessage(db.pool, topic.id, 'bulk')).sequence).toBe(20001);
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

  it('sends one NOTIFY per transaction, not one per row', async () => {
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id);
    const listener = new pg.Client({ connectionString: db.url });
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
