import pg from 'pg';
import type request from 'supertest';
import { TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import {
  counts,
  oneToN,
  publishingApi,
  sequencesByPartition,
  topicWith,
} from './helpers/publishing.js';
import { searchPathOption } from '../src/database/schema.js';

/**
 * DESIGN §7 "Publishing, more" (issue 10, points 1 and 2): an idempotency key publishes a message
 * once, through the API or SQL, and SQL producers' skipped rows leave no gap.
 */
describe('publishing: idempotency keys and batches', () => {
  const api = publishingApi();
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeAll(() => {
    ({ db, http } = api);
  });

  describe('idempotency_key on POST /topics/{name}/messages (point 1)', () => {
    it('answers a repeat 200 with the original message and fans out nothing', async () => {
      const topic = await topicWith(db.pool, 2);
      const first = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'user-1', payload: { n: 1 }, idempotency_key: 'order-1' })
        .expect(201);
      expect(first.body).toEqual({
        id: expect.any(Number),
        topic_id: topic.id,
        partition_key: 'user-1',
        sequence: 1,
        created_at: expect.any(String),
        idempotency_key: 'order-1',
        event_type: null,
      });

      // The repeat wins nothing by saying something else: the key alone decides.
      const repeat = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'user-2', payload: { n: 2 }, idempotency_key: 'order-1' })
        .expect(200);
      expect(repeat.body).toEqual(first.body);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 1, deliveries: 2 });
      const shown = await http.get(`/messages/${first.body.id}`).expect(200);
      expect(shown.body).toMatchObject({ idempotency_key: 'order-1', payload: { n: 1 } });

      // Without a key, or with another one, every publish is new; the partition has no hole.
      const plain = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'user-1', payload: { n: 3 } })
        .expect(201);
      expect(plain.body).toMatchObject({ sequence: 2, idempotency_key: null });
      const other = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'user-1', payload: { n: 4 }, idempotency_key: 'order-2' })
        .expect(201);
      expect(other.body.sequence).toBe(3);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 3, deliveries: 6 });
    });

    it('keeps keys apart per topic', async () => {
      const [a, b] = [await topicWith(db.pool, 1), await topicWith(db.pool, 1)];
      const onA = await http
        .post(`/topics/${a.name}/messages`)
        .send({ partition_key: 'k', payload: 1, idempotency_key: 'same' })
        .expect(201);
      const onB = await http
        .post(`/topics/${b.name}/messages`)
        .send({ partition_key: 'k', payload: 1, idempotency_key: 'same' })
        .expect(201);
      expect(onB.body.id).not.toBe(onA.body.id);
    });

    it('publishes exactly one message for 20 concurrent repeats of one key', async () => {
      const topic = await topicWith(db.pool, 1);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          http
            .post(`/topics/${topic.name}/messages`)
            .send({ partition_key: 'hot', payload: { attempt: i }, idempotency_key: 'once' }),
        ),
      );
      expect(answers.map((a) => a.status).sort()).toEqual([...Array(19).fill(200), 201]);
      const ids = new Set(answers.map((a) => a.body.id));
      expect(ids.size).toBe(1);
      expect(new Set(answers.map((a) => a.body.sequence))).toEqual(new Set([1]));
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 1, deliveries: 1 });
      const next = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'hot', payload: {} })
        .expect(201);
      expect(next.body.sequence).toBe(2);
    });

    it('is enforced by the database: a repeat through SQL is skipped too', async () => {
      const topic = await topicWith(db.pool, 1);
      await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'k', payload: {}, idempotency_key: 'sql-too' })
        .expect(201);
      const replay = await db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
         VALUES ($1, 'k', '{}', 'sql-too')
         ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
        [topic.id],
      );
      expect(replay.rowCount).toBe(0);
      await expect(
        db.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
           VALUES ($1, 'k', '{}', 'sql-too')`,
          [topic.id],
        ),
      ).rejects.toThrow(/messages_idempotency_key/);
    });

    it.each([
      ['empty', ''],
      ['256 characters', 'x'.repeat(256)],
      ['a number', 42],
      ['null', null],
      ['a \\u0000', 'a\u0000b'],
      ['a lone surrogate', '\ud800'],
    ])('refuses a key that is %s with a 400, writing nothing', async (_what, key) => {
      const topic = await topicWith(db.pool, 1);
      const res = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'k', payload: {}, idempotency_key: key })
        .expect(400);
      expect(res.body.message).toMatch(/^idempotency_key must be a string of 1-255/);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 0, deliveries: 0 });
    });

    it('takes 255 characters counted as PostgreSQL counts them', async () => {
      const topic = await topicWith(db.pool, 0);
      const key = '日本'.repeat(127) + '😀';
      const res = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'k', payload: {}, idempotency_key: key })
        .expect(201);
      expect(res.body.idempotency_key).toBe(key);
    });

    it('answers 404 for a topic that does not exist, key or not', async () => {
      await http
        .post('/topics/nowhere/messages')
        .send({ partition_key: 'k', payload: {}, idempotency_key: 'x' })
        .expect(404);
    });
  });

  describe('SQL producers: INSERT … ON CONFLICT DO NOTHING leaves no gap (point 2)', () => {
    it('numbers a multi-row INSERT over several partitions 1..n, skipped rows taking nothing', async () => {
      const topic = await topicWith(db.pool, 1);
      const insert = (rows: [string, string][]) =>
        db.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
           SELECT $1, r.partition_key, jsonb_build_object('key', r.key), r.key
           FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS r(partition_key, key, position)
           ORDER BY r.position
           ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
          [topic.id, rows.map((r) => r[0]), rows.map((r) => r[1])],
        );
      const first = await insert([
        ['a', 'k1'],
        ['b', 'k2'],
        ['a', 'k1'],
        ['a', 'k3'],
        ['b', 'k2'],
        ['b', 'k4'],
      ]);
      expect(first.rowCount).toBe(4);
      const second = await insert([
        ['a', 'k3'],
        ['a', 'k5'],
        ['b', 'k1'],
        ['b', 'k6'],
        ['a', 'k7'],
      ]);
      expect(second.rowCount).toBe(3);
      expect(await sequencesByPartition(db.pool, topic.id)).toEqual({ a: oneToN(4), b: oneToN(3) });
      const { rows } = await db.pool.query(
        `SELECT partition_key, last_sequence::int FROM partition_sequences
         WHERE topic_id = $1 ORDER BY partition_key`,
        [topic.id],
      );
      expect(rows).toEqual([
        { partition_key: 'a', last_sequence: 4 },
        { partition_key: 'b', last_sequence: 3 },
      ]);
      expect((await counts(db.pool, topic.id)).deliveries).toBe(7);
    });

    it('gives 1..n without holes to 10 concurrent producers replaying one set of keys', async () => {
      const topic = await topicWith(db.pool, 1);
      const KEYS = 30;
      const pools = Array.from(
        { length: 10 },
        () => new pg.Pool({ connectionString: db.url, max: 1, ...searchPathOption(TEST_SCHEMA) }),
      );
      try {
        await Promise.all(
          pools.map(async (pool, producer) => {
            for (let i = 0; i < KEYS; i++) {
              const key = (i + producer * 3) % KEYS;
              await pool.query(
                `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
                 VALUES ($1, $2, jsonb_build_object('producer', $3::int), $4)
                 ON CONFLICT (topic_id, idempotency_key) DO NOTHING`,
                [topic.id, `p${key % 3}`, producer, `key-${key}`],
              );
            }
          }),
        );
      } finally {
        await Promise.all(pools.map((p) => p.end()));
      }
      expect(await sequencesByPartition(db.pool, topic.id)).toEqual({
        p0: oneToN(10),
        p1: oneToN(10),
        p2: oneToN(10),
      });
      expect(await counts(db.pool, topic.id)).toEqual({ messages: KEYS, deliveries: KEYS });
    });
  });
});
