import { createTestDatabase, TestDatabase } from './helpers/db.js';

/** pgwq_publish: a producer publishes by topic name inside its own transaction. */
describe('pgwq_publish', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(`INSERT INTO topics (id, name) VALUES (1, 'orders')`);
    await db.pool.query(
      `INSERT INTO webhooks (topic_id, url, secret)
       VALUES (1, 'http://127.0.0.1:9/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')`,
    );
  });
  afterAll(() => db.drop());

  const messages = async (key: string) =>
    (
      await db.pool.query<{ id: string; sequence: string; event_type: string | null }>(
        `SELECT id, sequence, event_type FROM messages WHERE partition_key = $1 ORDER BY sequence`,
        [key],
      )
    ).rows;

  it('publishes nothing when the transaction rolls back, and leaves no gap in the sequence', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string }>(
        `SELECT pgwq_publish('orders', 'user-1', '{"n": 1}') AS id`,
      );
      expect(Number(rows[0].id)).toBeGreaterThan(0);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await messages('user-1')).toEqual([]);
    const { rows: deliveries } = await db.pool.query(
      `SELECT 1 FROM deliveries WHERE partition_key = 'user-1'`,
    );
    expect(deliveries).toEqual([]);

    const { rows } = await db.pool.query<{ id: string }>(
      `SELECT pgwq_publish('orders', 'user-1', '{"n": 1}', 'order.created') AS id`,
    );
    expect(await messages('user-1')).toEqual([
      { id: rows[0].id, sequence: '1', event_type: 'order.created' },
    ]);
  });

  it('publishes through the trigger when the transaction commits: a sequence and a delivery per webhook', async () => {
    const client = await db.pool.connect();
    let ids: string[];
    try {
      await client.query('BEGIN');
      ids = [];
      for (const n of [1, 2]) {
        const { rows } = await client.query<{ id: string }>(
          `SELECT pgwq_publish('orders', 'user-2', $1::jsonb) AS id`,
          [JSON.stringify({ n })],
        );
        ids.push(rows[0].id);
      }
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await messages('user-2')).toEqual([
      { id: ids[0], sequence: '1', event_type: null },
      { id: ids[1], sequence: '2', event_type: null },
    ]);
    const { rows } = await db.pool.query<{ message_id: string; sequence: string }>(
      `SELECT message_id, sequence FROM deliveries WHERE partition_key = 'user-2' ORDER BY sequence`,
    );
    expect(rows).toEqual([
      { message_id: ids[0], sequence: '1' },
      { message_id: ids[1], sequence: '2' },
    ]);
  });

  it('refuses an unknown topic with an error that names it (SQLSTATE 42704)', async () => {
    await expect(
      db.pool.query(`SELECT pgwq_publish('no-such-topic', 'user-3', '{}')`),
    ).rejects.toMatchObject({ code: '42704', message: 'topic "no-such-topic" does not exist' });
    expect(await messages('user-3')).toEqual([]);
  });

  it('returns the first message of a repeated idempotency key and publishes nothing more', async () => {
    const publish = async () =>
      (
        await db.pool.query<{ id: string }>(
          `SELECT pgwq_publish('orders', 'user-4', '{"n": 1}', NULL, 'order-9001-created') AS id`,
        )
      ).rows[0].id;
    const first = await publish();
    expect(await publish()).toBe(first);
    expect(await messages('user-4')).toEqual([{ id: first, sequence: '1', event_type: null }]);
  });

  it('refuses an event type outside 1-128 characters of A-Z a-z 0-9 _ . : / -', async () => {
    for (const bad of ['', 'order created', 'x'.repeat(129), 'ordre.créé']) {
      await expect(
        db.pool.query(`SELECT pgwq_publish('orders', 'user-5', '{}', $1)`, [bad]),
      ).rejects.toMatchObject({ code: '23514' });
    }
    await db.pool.query(`SELECT pgwq_publish('orders', 'user-5', '{}', $1)`, [
      `billing:v2/invoice.paid_${'x'.repeat(103)}`,
    ]);
    expect(await messages('user-5')).toHaveLength(1);
  });
});
