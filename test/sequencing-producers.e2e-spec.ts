import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { concurrently, sequences } from './helpers/sequencing.js';

/**
 * The trigger numbers what producers insert, one gap-free run per partition in commit order
 * (DESIGN §2, §3).
 */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

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
    expect(await sequences(db.pool, topic.id, 'k')).toEqual([1, 2]);
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
    await concurrently(db, 8, async (pool, producer) => {
      for (let i = 0; i < 25; i++) {
        await insertMessage(pool, topic.id, 'hot', { producer, i });
      }
    });
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

  it('numbers 1-row and multi-row statements of 8 concurrent producers on one key alike (issue 13, point 3)', async () => {
    // A 1-row statement takes the fan-out's row path, a 3-row one its set path, a replayed
    // idempotency key inserts nothing: all three interleave on one partition and one line.
    const topic = await createTopic(db.pool);
    const active = await createWebhook(db.pool, topic.id);
    const paused = await createWebhook(db.pool, topic.id);
    await db.pool.query(`UPDATE webhooks SET status = 'paused' WHERE id = $1`, [paused.id]);
    await concurrently(db, 8, async (pool, producer) => {
      for (let i = 0; i < 10; i++) {
        await insertMessage(pool, topic.id, 'mixed', { producer, i, rows: 1 });
        await pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload)
           SELECT $1, 'mixed', jsonb_build_object('producer', $2::int, 'i', $3::int, 'rows', 3)
           FROM generate_series(1, 3)`,
          [topic.id, producer, i],
        );
        await pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
           VALUES ($1, 'mixed', '{}', 'once')
           ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
          [topic.id],
        );
      }
    });
    const n = 8 * 10 * 4 + 1;
    const all = Array.from({ length: n }, (_, i) => i + 1);
    expect(await sequences(db.pool, topic.id, 'mixed')).toEqual(all);
    for (const webhook of [active, paused]) {
      const { rows } = await db.pool.query<{ sequence: string }>(
        `SELECT d.sequence FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.webhook_id = $1 AND m.sequence = d.sequence ORDER BY d.sequence`,
        [webhook.id],
      );
      expect(rows.map((r) => Number(r.sequence))).toEqual(all);
    }
    const lines = await db.pool.query<{
      webhook_id: number;
      head_sequence: string;
      tail_sequence: string;
      due: boolean;
    }>(
      `SELECT webhook_id, head_sequence, tail_sequence, next_attempt_at IS NOT NULL AS due
       FROM delivery_lines WHERE partition_key = 'mixed' AND webhook_id IN ($1, $2)
       ORDER BY webhook_id`,
      [active.id, paused.id],
    );
    expect(
      lines.rows.map((l) => [
        l.webhook_id,
        Number(l.head_sequence),
        Number(l.tail_sequence),
        l.due,
      ]),
    ).toEqual([
      [active.id, 1, n, true],
      [paused.id, 1, n, false],
    ]);
    const counter = await db.pool.query<{ last_sequence: string }>(
      `SELECT last_sequence FROM partition_sequences WHERE topic_id = $1 AND partition_key = 'mixed'`,
      [topic.id],
    );
    expect(Number(counter.rows[0].last_sequence)).toBe(n);
  });

  it('keeps keys and topics independent', async () => {
    const t1 = await createTopic(db.pool);
    const t2 = await createTopic(db.pool);
    await insertMessage(db.pool, t1.id, 'a');
    await insertMessage(db.pool, t1.id, 'a');
    await insertMessage(db.pool, t1.id, 'b');
    await insertMessage(db.pool, t2.id, 'a');
    expect(await sequences(db.pool, t1.id, 'a')).toEqual([1, 2]);
    expect(await sequences(db.pool, t1.id, 'b')).toEqual([1]);
    expect(await sequences(db.pool, t2.id, 'a')).toEqual([1]);
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
    expect(await sequences(db.pool, topic.id, 'a')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await sequences(db.pool, topic.id, 'b')).toEqual([1, 2, 3, 4]);
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
});
