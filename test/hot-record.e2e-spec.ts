import {
  CLAIM_LINES,
  ClaimedLine,
  parseRows,
  RECORD_ATTEMPTS,
  RecordedAttempt,
  recordAttemptsValues,
  RecordRequest,
} from '../src/delivery/delivery.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';

/**
 * Recording an attempt that delivers a message, or one that fails and will be retried, is a
 * heap-only (HOT) update of its deliveries row: no index of deliveries reads a column it changes
 * (migration HotRecords1795633464900). An index on status, delivered_at, attempts,
 * next_attempt_at, last_status_code or last_error, or in a partial index's predicate, makes
 * every such update write an entry into every index of the table, and fails this test.
 */
describe('recording a delivered or retried attempt is a heap-only update of deliveries', () => {
  let db: TestDatabase;
  const LEASE_MS = 60_000;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  const attempt = (
    line: Pick<
      ClaimedLine,
      'webhook_id' | 'partition_key' | 'lease_token' | 'sequence' | 'delivery_id'
    >,
    outcome: 'delivered' | 'pending',
  ): RecordRequest => ({
    webhookId: line.webhook_id,
    partitionKey: line.partition_key,
    leaseToken: line.lease_token,
    head: line.sequence,
    outcome,
    retryDelaySeconds: 60,
    deliveryId: line.delivery_id!,
    attempt: 1,
    statusCode: outcome === 'delivered' ? 200 : 500,
    error: outcome === 'delivered' ? null : 'HTTP 500',
    startedAt: new Date(),
    durationMs: 3,
    responseBody: null,
    keep: true,
  });

  it('the first message delivered, the second failed: two updates, both HOT', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('n', n) FROM generate_series(1, 2) n`,
      [topic.id],
    );
    // One transaction, so pg_stat_xact_user_tables holds exactly its own updates.
    // From the test pool: its connections follow the run's DATABASE_SCHEMA.
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const [line] = parseRows<ClaimedLine>(
        (await client.query(CLAIM_LINES, [1, LEASE_MS, [], [], [], 10])).rows,
      );
      expect(line).toMatchObject({ webhook_id: webhook.id, sequence: '1' });
      const record = async (request: RecordRequest) =>
        parseRows<RecordedAttempt>(
          (await client.query(RECORD_ATTEMPTS, recordAttemptsValues([request], LEASE_MS))).rows,
        )[0];
      const kept = await record(attempt(line, 'delivered'));
      expect(kept).toMatchObject({ fenced: true, recorded: 1, sequence: '2' });
      expect(await record(attempt(kept as ClaimedLine, 'pending'))).toMatchObject({
        fenced: true,
        recorded: 1,
      });

      const { rows: deliveries } = await client.query(
        `SELECT sequence::int, status, attempts FROM deliveries WHERE webhook_id = $1
         ORDER BY sequence`,
        [webhook.id],
      );
      expect(deliveries).toEqual([
        { sequence: 1, status: 'delivered', attempts: 1 },
        { sequence: 2, status: 'pending', attempts: 1 },
      ]);
      const { rows: stats } = await client.query(
        `SELECT n_tup_upd::int AS updated, n_tup_hot_upd::int AS hot
         FROM pg_stat_xact_user_tables WHERE relname = 'deliveries'`,
      );
      expect(stats).toEqual([{ updated: 2, hot: 2 }]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
