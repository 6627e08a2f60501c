import pg from 'pg';

export async function createTopic(
  pool: pg.Pool,
  name = `topic-${Math.random().toString(36).slice(2, 10)}`,
) {
  const { rows } = await pool.query<{ id: number; name: string }>(
    'INSERT INTO topics (name) VALUES ($1) RETURNING id, name',
    [name],
  );
  return rows[0];
}

export async function createWebhook(
  pool: pg.Pool,
  topicId: number,
  url = 'http://127.0.0.1:9/unused',
  secret = 'whsec_' + Buffer.alloc(32, 7).toString('base64'),
) {
  const { rows } = await pool.query<{ id: number; url: string; secret: string }>(
    'INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3) RETURNING id, url, secret',
    [topicId, url, secret],
  );
  return rows[0];
}

/** Publishes the way a SQL producer does, outside any transaction of the caller's. */
export async function insertMessage(
  pool: pg.Pool | pg.PoolClient,
  topicId: number,
  partitionKey: string,
  payload: unknown = { n: 1 },
) {
  const { rows } = await pool.query<{ id: string; sequence: string }>(
    `INSERT INTO messages (topic_id, partition_key, payload, created_at)
     VALUES ($1, $2, $3::jsonb, now()) RETURNING id, sequence`,
    [topicId, partitionKey, JSON.stringify(payload)],
  );
  return { id: Number(rows[0].id), sequence: Number(rows[0].sequence) };
}

/**
 * Runs `fn` while messages has a producer's AFTER INSERT row trigger that publishes
 * {"echo": false} to the same partition for every message whose payload has "echo": true: a
 * message inserted by a trigger inside another insert.
 */
export async function withEchoTrigger<T>(pool: pg.Pool, fn: () => Promise<T>): Promise<T> {
  await pool.query(`
    CREATE FUNCTION producer_echo() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO messages (topic_id, partition_key, payload)
      VALUES (NEW.topic_id, NEW.partition_key, '{"echo": false}');
      RETURN NULL;
    END $$;
    CREATE TRIGGER messages_echo AFTER INSERT ON messages
      FOR EACH ROW WHEN ((NEW.payload->>'echo')::boolean) EXECUTE FUNCTION producer_echo();`);
  try {
    return await fn();
  } finally {
    await pool.query(`DROP TRIGGER messages_echo ON messages; DROP FUNCTION producer_echo();`);
  }
}
