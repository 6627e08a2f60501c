import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { createTestApp } from './helpers/app.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, insertMessage } from './helpers/factories.js';

/**
 * The API's database waits are bounded (DATABASE_TIMEOUTS): publishes queued behind another
 * transaction on their partition get a clear 503 after the lock timeout instead of hanging, and
 * meanwhile the pool serves everything else.
 */
describe('API database timeouts', () => {
  let db: TestDatabase;
  let app: NestExpressApplication;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url);
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  const publish = (topic: string, key: string) =>
    request(app.getHttpServer())
      .post(`/topics/${topic}/messages`)
      .send({ partition_key: key, payload: { n: 1 } });

  it('answers 503 to publishes stuck behind a partition lock, and serves other requests meanwhile', async () => {
    const topic = await createTopic(db.pool);
    // A SQL producer's open transaction holds partition k's counter.
    const producer = await db.pool.connect();
    try {
      await producer.query('BEGIN');
      await insertMessage(producer, topic.id, 'k');

      const started = Date.now();
      let settled = 0;
      const stuck = [1, 2, 3].map(() =>
        publish(topic.name, 'k').then((res) => {
          settled += 1;
          return res;
        }),
      );
      // Other partitions and other routes do not wait for them.
      const other = await publish(topic.name, 'other');
      expect(other.status).toBe(201);
      expect((await request(app.getHttpServer()).get('/topics')).status).toBe(200);
      expect(settled).toBe(0);

      for (const res of await Promise.all(stuck)) {
        expect(res.status).toBe(503);
        expect(res.body).toEqual({
          status_code: 503,
          error: 'Service Unavailable',
          message: 'another transaction held a lock this request needs for over 5 s; try again',
        });
      }
      // The lock timeout is 5 s; this only says "bounded", not how fast.
      expect(Date.now() - started).toBeLessThan(20_000);

      // More waiting publishes than the pool has connections: still all answered, in bounded
      // time, some after waiting for a connection and then for the lock.
      const many = await Promise.all(Array.from({ length: 14 }, () => publish(topic.name, 'k')));
      expect(many.map((r) => r.status)).toEqual(Array(14).fill(503));
    } finally {
      await producer.query('ROLLBACK');
      producer.release();
    }
    // Nothing was written by the refused publishes: the partition starts at 1.
    const after = await publish(topic.name, 'k');
    expect(after.status).toBe(201);
    expect(after.body.sequence).toBe(1);
  }, 60_000);
});
