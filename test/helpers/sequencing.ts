import pg from 'pg';
import { searchPathOption } from '../../src/database/schema.js';
import { TEST_SCHEMA, TestDatabase } from './db.js';

/** Runs `producers` copies of `fn` at once, each on a connection of its own. */
export async function concurrently(
  db: TestDatabase,
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

/** The sequences of a partition's messages, in order. */
export async function sequences(pool: pg.Pool, topicId: number, key: string): Promise<number[]> {
  const { rows } = await pool.query<{ sequence: string }>(
    'SELECT sequence FROM messages WHERE topic_id = $1 AND partition_key = $2 ORDER BY sequence',
    [topicId, key],
  );
  return rows.map((r) => Number(r.sequence));
}
