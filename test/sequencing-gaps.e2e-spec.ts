import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { concurrently, sequences } from './helpers/sequencing.js';

/** No gap in a partition's numbering when rows are skipped or the counters pruned (DESIGN §3). */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

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
      expect(await sequences(db.pool, topic.id, 'k')).toEqual([1, 2, 3, 4]);
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
      expect(await sequences(db.pool, topic.id, 'k')).toEqual([1, 2, 3, 4]);
    });

    it('gives 1..n without holes to 8 concurrent producers replaying the same idempotency keys on one partition', async () => {
      const topic = await createTopic(db.pool);
      await createWebhook(db.pool, topic.id);
      const KEYS = 40;
      await concurrently(db, 8, async (pool, producer) => {
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
      expect(await sequences(db.pool, topic.id, 'hot')).toEqual(
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
      expect(await sequences(db.pool, topic.id, 'k')).toEqual([1, 2, 3]);
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
});
