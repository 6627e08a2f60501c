import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import request from 'supertest';
import { createTestApp } from './app.js';
import { createTestDatabase, TestDatabase } from './db.js';
import { createTopic, createWebhook } from './factories.js';

/**
 * The API the publishing tests publish through (payloads up to 16 KiB), on a database of its
 * own. Call it inside a describe: it registers the hooks that start and stop them; `db` and
 * `http` are there once the describe's beforeAll ran.
 */
export function publishingApi() {
  let db!: TestDatabase;
  let app!: NestExpressApplication;
  let http!: ReturnType<typeof request>;

  beforeAll(async () => {
    db = await createTestDatabase();
    app = await createTestApp(db.url, { MAX_PAYLOAD_BYTES: '16384' });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await db.drop();
  });

  return {
    get db() {
      return db;
    },
    get http() {
      return http;
    },
  };
}

/** A topic with `webhooks` webhooks, made with SQL; its name. */
export async function topicWith(
  pool: pg.Pool,
  webhooks: number,
): Promise<{ id: number; name: string }> {
  const topic = await createTopic(pool);
  for (let i = 0; i < webhooks; i++) await createWebhook(pool, topic.id);
  return topic;
}

/** How many messages a topic has, and deliveries. */
export async function counts(pool: pg.Pool, topicId: number) {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*)::int FROM messages WHERE topic_id = $1) AS messages,
            (SELECT count(*)::int FROM deliveries WHERE topic_id = $1) AS deliveries`,
    [topicId],
  );
  return rows[0] as { messages: number; deliveries: number };
}

/** Each partition's sequences, in order. */
export async function sequencesByPartition(
  pool: pg.Pool,
  topicId: number,
): Promise<Record<string, number[]>> {
  const { rows } = await pool.query<{ partition_key: string; sequences: number[] }>(
    `SELECT partition_key, array_agg(sequence::int ORDER BY sequence) AS sequences
     FROM messages WHERE topic_id = $1 GROUP BY partition_key`,
    [topicId],
  );
  return Object.fromEntries(rows.map((r) => [r.partition_key, r.sequences]));
}

export const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
