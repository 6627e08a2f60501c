import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import type { TestDatabase } from './helpers/db.js';
import {
  counts,
  oneToN,
  publishingApi,
  sequencesByPartition,
  topicWith,
} from './helpers/publishing.js';

/** DESIGN §7 "Publishing, more" (issue 10, point 3): batches, in one transaction and in order. */
describe('publishing: idempotency keys and batches', () => {
  const api = publishingApi();
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeAll(() => {
    ({ db, http } = api);
  });

  describe('POST /topics/{name}/messages/batch (point 3)', () => {
    const batch = (topic: string, messages: unknown[]) =>
      http.post(`/topics/${topic}/messages/batch`).send({ messages });

    it('publishes 1,000 messages in one transaction, in input order, sequences per partition following it', async () => {
      const topic = await topicWith(db.pool, 2);
      // Partitions interleaved, and not in name order, so that input order is what counts.
      const partitions = ['m', 'b', 'z', 'a'];
      const items = Array.from({ length: 1000 }, (_, i) => ({
        partition_key: partitions[i % 4],
        payload: { i },
      }));
      const res = await batch(topic.name, items).expect(201);
      expect(res.body.messages).toHaveLength(1000);
      res.body.messages.forEach((m: { partition_key: string; sequence: number }, i: number) => {
        expect(m).toMatchObject({ partition_key: partitions[i % 4], sequence: (i >> 2) + 1 });
      });
      const { rows } = await db.pool.query(
        `SELECT count(DISTINCT xmin::text)::int AS transactions,
                bool_and((payload->>'i')::int / 4 + 1 = sequence) AS in_order
         FROM messages WHERE topic_id = $1`,
        [topic.id],
      );
      expect(rows[0]).toEqual({ transactions: 1, in_order: true });
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 1000, deliveries: 2000 });
      const lines = await db.pool.query(
        `SELECT DISTINCT head_sequence::int AS head, tail_sequence::int AS tail
         FROM delivery_lines WHERE topic_id = $1`,
        [topic.id],
      );
      expect(lines.rows).toEqual([{ head: 1, tail: 250 }]);
      // Each answer is the message stored at that position.
      const shown = await http.get(`/messages/${res.body.messages[997].id}`).expect(200);
      expect(shown.body).toMatchObject({ partition_key: 'b', sequence: 250, payload: { i: 997 } });
    });

    it('stores every payload byte for byte as sent, as the single publish does', async () => {
      const topic = await topicWith(db.pool, 0);
      const payload = '{"big": 123456789012345678901234567890.5, "tiny": 1e-400, "s": "\\u00e9"}';
      const res = await http
        .post(`/topics/${topic.name}/messages/batch`)
        .set('Content-Type', 'application/json')
        .send(`{"messages": [{"partition_key": "k", "payload": ${payload}}]}`)
        .expect(201);
      const single = await http
        .post(`/topics/${topic.name}/messages`)
        .set('Content-Type', 'application/json')
        .send(`{"partition_key": "k", "payload": ${payload}}`)
        .expect(201);
      const { rows } = await db.pool.query(
        'SELECT id, payload::text AS text FROM messages WHERE id = ANY($1) ORDER BY id',
        [[res.body.messages[0].id, single.body.id]],
      );
      expect(rows[0].text).toBe(rows[1].text);
      expect(rows[0].text).toContain('123456789012345678901234567890.5');
    });

    it.each([
      [
        'a bad partition_key',
        { partition_key: 'has space', payload: {} },
        400,
        /^messages\[2\]\.partition_key must be/,
      ],
      ['no payload', { partition_key: 'k' }, 400, /^messages\[2\]\.payload is required$/],
      [
        'an unknown field',
        { partition_key: 'k', payload: {}, priority: 1 },
        400,
        /^property messages\[2\]\.priority should not exist$/,
      ],
      ['not an object', 'hello', 400, /^messages\[2\] must be a JSON object$/],
      [
        'a bad idempotency_key',
        { partition_key: 'k', payload: {}, idempotency_key: '' },
        400,
        /^messages\[2\]\.idempotency_key must be/,
      ],
      [
        'a payload PostgreSQL cannot store',
        { partition_key: 'k', payload: { s: 'a\u0000b' } },
        400,
        /^messages\[2\]\.payload is not storable JSON/,
      ],
      [
        'a payload over MAX_PAYLOAD_BYTES',
        { partition_key: 'k', payload: 'x'.repeat(17000) },
        413,
        /^messages\[2\]\.payload is \d+ bytes; the limit is MAX_PAYLOAD_BYTES=16384$/,
      ],
    ])(
      'refuses a batch with %s, naming its index and writing nothing',
      async (_w, bad, status, why) => {
        const topic = await topicWith(db.pool, 1);
        const good = (i: number) => ({ partition_key: 'k', payload: { i } });
        const res = await batch(topic.name, [good(0), good(1), bad, good(3)]).expect(status);
        expect(res.body.message).toMatch(why);
        expect(await counts(db.pool, topic.id)).toEqual({ messages: 0, deliveries: 0 });
        // The partition starts at 1 afterwards: nothing of the refused batch was numbered.
        const next = await batch(topic.name, [good(0)]).expect(201);
        expect(next.body.messages[0].sequence).toBe(1);
      },
    );

    it.each([
      [
        'no messages',
        { messages: [] },
        /^messages must be an array of 1 to 1000 messages \(got 0\)$/,
      ],
      [
        '1,001 messages',
        { messages: Array(1001).fill({ partition_key: 'k', payload: 1 }) },
        /\(got more\)$/,
      ],
      ['messages not an array', { messages: {} }, /^messages must be an array of 1 to 1000/],
      ['another field', { messages: [], force: true }, /^property force should not exist$/],
    ])('refuses a body with %s', async (_what, body, why) => {
      const topic = await topicWith(db.pool, 0);
      const res = await http.post(`/topics/${topic.name}/messages/batch`).send(body).expect(400);
      expect(res.body.message).toMatch(why);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 0, deliveries: 0 });
    });

    it('answers 404 for a topic that does not exist', async () => {
      await batch('nowhere', [{ partition_key: 'k', payload: 1 }]).expect(404);
      await batch('nowhere', [{ partition_key: 'k', payload: 1, idempotency_key: 'x' }]).expect(
        404,
      );
    });

    it('answers already-published keys with their originals, and a retried batch 200 with the same messages', async () => {
      const topic = await topicWith(db.pool, 1);
      const earlier = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'k', payload: { earlier: true }, idempotency_key: 'a' })
        .expect(201);
      const items = [
        { partition_key: 'k', payload: { n: 0 }, idempotency_key: 'a' },
        { partition_key: 'k', payload: { n: 1 }, idempotency_key: 'b' },
        { partition_key: 'k', payload: { n: 2 } },
        { partition_key: 'j', payload: { n: 3 }, idempotency_key: 'b' },
        { partition_key: 'k', payload: { n: 4 }, idempotency_key: 'c' },
      ];
      const res = await batch(topic.name, items).expect(201);
      const [a, b, plain, bAgain, c] = res.body.messages;
      expect(a).toEqual(earlier.body);
      expect(b).toMatchObject({ partition_key: 'k', sequence: 2, idempotency_key: 'b' });
      expect(plain).toMatchObject({ partition_key: 'k', sequence: 3, idempotency_key: null });
      expect(bAgain).toEqual(b);
      expect(c).toMatchObject({ partition_key: 'k', sequence: 4, idempotency_key: 'c' });
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 4, deliveries: 4 });

      // The whole batch again, without the item that had no key: nothing new, 200.
      const retry = await batch(topic.name, [items[0], items[1], items[3], items[4]]).expect(200);
      expect(retry.body.messages).toEqual([a, b, bAgain, c]);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 4, deliveries: 4 });
    });

    it('keeps each partition gap-free and in input order under concurrent batches over the same partitions', async () => {
      const topic = await topicWith(db.pool, 1);
      const partitions = ['p1', 'p2', 'p3', 'p4', 'p5'];
      // Half the batches name the partitions p1..p5, half p5..p1: had their counters been locked
      // in input order, they could deadlock.
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, b) =>
          batch(
            topic.name,
            Array.from({ length: 50 }, (_, i) => ({
              partition_key: partitions[(b % 2 === 0 ? i : 49 - i) % 5],
              payload: { b, i },
            })),
          ),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
      const byPartition = await sequencesByPartition(db.pool, topic.id);
      for (const sequences of Object.values(byPartition)) {
        expect(sequences).toEqual(oneToN(sequences.length));
      }
      const { rows } = await db.pool.query<{ ok: boolean }>(
        `SELECT bool_and(ordered) AS ok FROM (
           SELECT (payload->>'i')::int > lag((payload->>'i')::int, 1, -1)
                    OVER (PARTITION BY partition_key, payload->>'b' ORDER BY sequence) AS ordered
           FROM messages WHERE topic_id = $1) AS s`,
        [topic.id],
      );
      expect(rows[0].ok).toBe(true);
    });
  });

  describe('request size (MAX_BATCH_BODY_BYTES)', () => {
    let bigApp: NestExpressApplication;
    beforeAll(async () => {
      bigApp = await createTestApp(db.url, {});
    });
    afterAll(() => bigApp.close());

    it('takes 1,000 messages of 8,000 bytes each by default, and refuses a body over the limit with 413', async () => {
      const topic = await topicWith(db.pool, 0);
      const payload = { data: 'x'.repeat(7980) };
      const items = Array.from({ length: 1000 }, () => ({ partition_key: 'k', payload }));
      const big = request(bigApp.getHttpServer());
      const res = await big.post(`/topics/${topic.name}/messages/batch`).send({ messages: items });
      expect(res.status).toBe(201);
      expect(res.body.messages.at(-1).sequence).toBe(1000);

      const tooBig = Array.from({ length: 1000 }, () => ({
        partition_key: 'k',
        payload: { data: 'x'.repeat(8500) },
      }));
      const refused = await big
        .post(`/topics/${topic.name}/messages/batch`)
        .send({ messages: tooBig })
        .expect(413);
      expect(refused.body.message).toBe('request body is too large (the limit is 8388608 bytes)');
      // The single publish keeps its own, smaller limit.
      await big
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'k', payload: { data: 'x'.repeat(1_100_000) } })
        .expect(413);
      expect(await counts(db.pool, topic.id)).toEqual({ messages: 1000, deliveries: 0 });
    });
  });
});
