import pg from 'pg';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage, withEchoTrigger } from './helpers/factories.js';
import { searchPathOption } from '../src/database/schema.js';

/** The trigger's promises (DESIGN §2, §3), proved on a real PostgreSQL. */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  /** Runs `producers` copies of `fn` at once, each on a connection of its own. */
  async function concurrently(
    producers: number,
    fn: (pool: pg.Pool, producer: number) => Promise<void>,
  ): Promise<void> {
    const pools = Array.from(
      { length: producers },
      () => new pg.Pool({ connectionString: db.url, max: 1, ...searchPathOption(TEST_SCHEMA) }),
    );
    try {
      await Promise.all(pools.map(fn));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  }

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
    await concurrently(8, async (pool, producer) => {
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
    await concurrently(8, async (pool, producer) => {
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
    expect(await sequences(topic.id, 'mixed')).toEqual(all);
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

  describe('gap-free when a row is not inserted after all (issue 8, item 9)', () => {
    it('leaves no gap for rows an ON CONFLICT DO NOTHING replay skips', async () => {
      const topic = await createTopic(db.pool);
      const { rows } = await db.pool.query<{ id: string }>(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, 'k', '{}' FROM generate_series(1, 3) RETURNING id`,
        [topic.id],
      );
      // The same three ids again (an outbox relay replaying its batch) and one new row.
      const replay = await db.pool.query(
        `INSERT INTO messages (id, topic_id, partition_key, payload)
         SELECT id, $1, 'k', '{}'
         FROM unnest($2::bigint[] || nextval(pg_get_serial_sequence('messages', 'id'))) AS id
         ON CONFLICT DO NOTHING`,
        [topic.id, rows.map((r) => r.id)],
      );
      expect(replay.rowCount).toBe(1);
      expect(await sequences(topic.id, 'k')).toEqual([1, 2, 3, 4]);
      expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(5);
    });

    it('numbers only the rows of a multi-row INSERT … ON CONFLICT (topic_id, idempotency_key) DO NOTHING that are inserted', async () => {
      const topic = await createTopic(db.pool);
      const webhook = await createWebhook(db.pool, topic.id);
      const publish = (keys: string[]) =>
        db.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
           SELECT $1, 'k', jsonb_build_object('key', key), key FROM unnest($2::text[]) AS key
           ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
          [topic.id, keys],
        );
      expect((await publish(['a', 'b', 'a', 'c', 'b'])).rowCount).toBe(3);
      expect((await publish(['c', 'd', 'a', 'e'])).rowCount).toBe(2);
      const { rows } = await db.pool.query(
        `SELECT sequence::int, idempotency_key FROM messages WHERE topic_id = $1 ORDER BY sequence`,
        [topic.id],
      );
      expect(rows).toEqual(
        ['a', 'b', 'c', 'd', 'e'].map((key, i) => ({ sequence: i + 1, idempotency_key: key })),
      );
      const line = await db.pool.query(
        'SELECT head_sequence::int, tail_sequence::int FROM delivery_lines WHERE webhook_id = $1',
        [webhook.id],
      );
      expect(line.rows).toEqual([{ head_sequence: 1, tail_sequence: 5 }]);
    });

    it('leaves no gap for rows a later BEFORE trigger of the producer drops', async () => {
      const topic = await createTopic(db.pool);
      // Fires after messages_assign_sequence (triggers of one event fire in name order).
      await db.pool.query(`
        CREATE FUNCTION producer_drop_marked() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.payload ? 'drop' THEN RETURN NULL; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER messages_zz_drop_marked BEFORE INSERT ON messages
          FOR EACH ROW EXECUTE FUNCTION producer_drop_marked();`);
      try {
        await db.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload)
           SELECT $1, 'k', CASE WHEN g % 2 = 0 THEN '{"drop": true}' ELSE '{}' END::jsonb
           FROM generate_series(1, 6) g`,
          [topic.id],
        );
        const dropped = await db.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'k', '{"drop": true}')`,
          [topic.id],
        );
        expect(dropped.rowCount).toBe(0);
        expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(4);
      } finally {
        await db.pool.query(`
          DROP TRIGGER messages_zz_drop_marked ON messages;
          DROP FUNCTION producer_drop_marked();`);
      }
      expect(await sequences(topic.id, 'k')).toEqual([1, 2, 3, 4]);
    });

    it('gives 1..n without holes to 8 concurrent producers replaying the same idempotency keys on one partition', async () => {
      const topic = await createTopic(db.pool);
      await createWebhook(db.pool, topic.id);
      const KEYS = 40;
      await concurrently(8, async (pool, producer) => {
        // Every producer publishes every key, two per statement, from its own starting point.
        for (let i = 0; i < KEYS; i += 2) {
          const keys = [(i + producer * 5) % KEYS, (i + 1 + producer * 5) % KEYS];
          await pool.query(
            `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
             SELECT $1, 'hot', jsonb_build_object('producer', $2::int), 'key-' || k
             FROM unnest($3::int[]) AS k
             ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
            [topic.id, producer, keys],
          );
        }
      });
      expect(await sequences(topic.id, 'hot')).toEqual(
        Array.from({ length: KEYS }, (_, i) => i + 1),
      );
      const { rows } = await db.pool.query(
        `SELECT count(DISTINCT idempotency_key)::int AS keys,
                (SELECT count(*)::int FROM deliveries WHERE topic_id = $1) AS deliveries,
                (SELECT last_sequence::int FROM partition_sequences
                 WHERE topic_id = $1 AND partition_key = 'hot') AS counter
         FROM messages WHERE topic_id = $1`,
        [topic.id],
      );
      expect(rows[0]).toEqual({ keys: KEYS, deliveries: KEYS, counter: KEYS });
    });
  });

  describe('lines and counters agree whatever was pruned (issue 8, item 3)', () => {
    async function line(webhookId: number, key = 'k') {
      const { rows } = await db.pool.query(
        `SELECT head_sequence::int AS head, tail_sequence::int AS tail,
                next_attempt_at IS NOT NULL AS due
         FROM delivery_lines WHERE webhook_id = $1 AND partition_key = $2`,
        [webhookId, key],
      );
      return rows[0];
    }

    /** A line that delivered 1..3 and is idle (head past tail), as a worker leaves it. */
    async function idleLineAfterThree() {
      const topic = await createTopic(db.pool);
      const webhook = await createWebhook(db.pool, topic.id);
      for (let i = 0; i < 3; i++) await insertMessage(db.pool, topic.id, 'k');
      await db.pool.query(
        `UPDATE deliveries SET status = 'delivered', delivered_at = now() WHERE webhook_id = $1`,
        [webhook.id],
      );
      await db.pool.query(
        `UPDATE delivery_lines SET head_sequence = 4, next_attempt_at = NULL WHERE webhook_id = $1`,
        [webhook.id],
      );
      return { topic, webhook };
    }

    it('continues the numbering after the counter row is pruned', async () => {
      const topic = await createTopic(db.pool);
      await insertMessage(db.pool, topic.id, 'k');
      await insertMessage(db.pool, topic.id, 'k');
      await db.pool.query('DELETE FROM partition_sequences WHERE topic_id = $1', [topic.id]);
      expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(3);
      expect(await sequences(topic.id, 'k')).toEqual([1, 2, 3]);
    });

    it('numbers above the lines after TRUNCATE messages, partition_sequences, so the idle line wakes at the new message', async () => {
      const { topic, webhook } = await idleLineAfterThree();
      await db.pool.query('TRUNCATE messages, partition_sequences CASCADE');
      expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(4);
      expect(await line(webhook.id)).toEqual({ head: 4, tail: 4, due: true });
    });

    it('numbers above the lines when delivered messages and the counter row were both pruned', async () => {
      const { topic, webhook } = await idleLineAfterThree();
      await db.pool.query('DELETE FROM messages WHERE topic_id = $1', [topic.id]);
      await db.pool.query('DELETE FROM partition_sequences WHERE topic_id = $1', [topic.id]);
      expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(4);
      expect(await line(webhook.id)).toEqual({ head: 4, tail: 4, due: true });
    });

    it('wakes an idle line at the new message even when its counter was set back', async () => {
      const { topic, webhook } = await idleLineAfterThree();
      await db.pool.query('DELETE FROM messages WHERE topic_id = $1', [topic.id]);
      await db.pool.query('UPDATE partition_sequences SET last_sequence = 0 WHERE topic_id = $1', [
        topic.id,
      ]);
      expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(1);
      expect(await line(webhook.id)).toEqual({ head: 1, tail: 1, due: true });
    });
  });

  it('keeps a message inserted by a trigger inside another insert on the line (issue 8, item 4)', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await withEchoTrigger(db.pool, async () => {
      await insertMessage(db.pool, topic.id, 'k', { echo: true });
      await insertMessage(db.pool, topic.id, 'k', { echo: true });
    });
    expect(await sequences(topic.id, 'k')).toEqual([1, 2, 3, 4]);
    const { rows } = await db.pool.query(
      'SELECT head_sequence::int AS head, tail_sequence::int AS tail FROM delivery_lines WHERE webhook_id = $1',
      [webhook.id],
    );
    expect(rows).toEqual([{ head: 1, tail: 4 }]);
  });

  it('refuses an UPDATE that moves a message to another partition, topic or sequence (issue 8, item 8)', async () => {
    const topic = await createTopic(db.pool);
    const other = await createTopic(db.pool);
    const message = await insertMessage(db.pool, topic.id, 'k', { v: 1 });
    for (const [column, value] of [
      ['partition_key', 'elsewhere'],
      ['topic_id', other.id],
      ['sequence', 7],
    ] as const) {
      await expect(
        db.pool.query(`UPDATE messages SET ${column} = $2 WHERE id = $1`, [message.id, value]),
      ).rejects.toThrow(
        /a message's topic_id, partition_key and sequence cannot change \(message \d+: topic \d+, partition_key "k", sequence 1\)/,
      );
    }
    // Setting them to what they are and changing the payload are fine.
    await db.pool.query(
      `UPDATE messages SET payload = '{"v": 2}', partition_key = 'k', sequence = 1 WHERE id = $1`,
      [message.id],
    );
    const { rows } = await db.pool.query(
      'SELECT topic_id, partition_key, sequence::int, payload FROM messages WHERE id = $1',
      [message.id],
    );
    expect(rows).toEqual([
      { topic_id: topic.id, partition_key: 'k', sequence: 1, payload: { v: 2 } },
    ]);
  });

  describe("runs on our tables whatever the producer's search_path (issue 8, item 7)", () => {
    /** A producer's session whose schemas and tables vanish afterwards. */
    async function inRolledBackTransaction(fn: (client: pg.PoolClient) => Promise<void>) {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        await fn(client);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    }

    it("writes to our tables when the producer's schema has tables of the same names", async () => {
      const topic = await createTopic(db.pool);
      const webhook = await createWebhook(db.pool, topic.id);
      await inRolledBackTransaction(async (client) => {
        await client.query(`
          CREATE SCHEMA producer;
          CREATE TABLE producer.deliveries (LIKE ${TEST_SCHEMA}.deliveries INCLUDING DEFAULTS);
          CREATE TABLE producer.delivery_lines (LIKE ${TEST_SCHEMA}.delivery_lines);
          CREATE TABLE producer.partition_sequences (LIKE ${TEST_SCHEMA}.partition_sequences);
          SET LOCAL search_path = producer, ${TEST_SCHEMA};`);
        await insertMessage(client, topic.id, 'k');
        const shadows = await client.query(
          `SELECT (SELECT count(*)::int FROM producer.deliveries) AS deliveries,
                  (SELECT count(*)::int FROM producer.delivery_lines) AS lines,
                  (SELECT count(*)::int FROM producer.partition_sequences) AS counters`,
        );
        expect(shadows.rows[0]).toEqual({ deliveries: 0, lines: 0, counters: 0 });
        const ours = await client.query(
          `SELECT (SELECT count(*)::int FROM ${TEST_SCHEMA}.deliveries WHERE webhook_id = $1) AS deliveries,
                  (SELECT count(*)::int FROM ${TEST_SCHEMA}.delivery_lines WHERE webhook_id = $1) AS lines`,
          [webhook.id],
        );
        expect(ours.rows[0]).toEqual({ deliveries: 1, lines: 1 });
      });
    });

    it('ignores temporary tables of the same names and works without our schema on the path', async () => {
      const topic = await createTopic(db.pool);
      const webhook = await createWebhook(db.pool, topic.id);
      await inRolledBackTransaction(async (client) => {
        await client.query(`
          CREATE TEMP TABLE deliveries (LIKE ${TEST_SCHEMA}.deliveries) ON COMMIT DROP;
          CREATE SCHEMA elsewhere;
          SET LOCAL search_path = elsewhere;`);
        await client.query(
          `INSERT INTO ${TEST_SCHEMA}.messages (topic_id, partition_key, payload) VALUES ($1, 'k', '{}')`,
          [topic.id],
        );
        const temp = await client.query('SELECT count(*)::int AS n FROM pg_temp.deliveries');
        expect(temp.rows[0].n).toBe(0);
        const ours = await client.query(
          `SELECT count(*)::int AS n FROM ${TEST_SCHEMA}.deliveries WHERE webhook_id = $1`,
          [webhook.id],
        );
        expect(ours.rows[0].n).toBe(1);
      });
    });
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
