import pg from 'pg';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';

/**
 * The trigger keeps a message where it was numbered, and writes to our tables whatever the
 * producer's search_path.
 */
describe('message trigger: sequences and fan-out', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

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
});
