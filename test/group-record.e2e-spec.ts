import {
  CLAIM_LINES,
  ClaimedLine,
  parseRows,
  RECORD_ATTEMPTS,
  RECORD_ATTEMPTS_ASYNC,
  RecordedAttempt,
  recordAttemptsValues,
  RecordRequest,
} from '../src/delivery/delivery.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook } from './helpers/factories.js';

/** RECORD_ATTEMPTS as the worker sends it: several lines' results in one statement. */
describe('recording results together (pgwq_record_attempts)', () => {
  let db: TestDatabase;
  const LEASE_MS = 60_000;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  async function claimAll(): Promise<ClaimedLine[]> {
    const rows = parseRows<ClaimedLine>(
      (await db.pool.query(CLAIM_LINES, [100, LEASE_MS, [], [], [], 100])).rows,
    );
    return rows.sort((a, b) => a.partition_key.localeCompare(b.partition_key));
  }

  const success = (line: ClaimedLine): RecordRequest => ({
    webhookId: line.webhook_id,
    partitionKey: line.partition_key,
    leaseToken: line.lease_token,
    head: line.sequence,
    outcome: 'delivered',
    retryDelaySeconds: 0,
    deliveryId: line.delivery_id!,
    attempt: 1,
    statusCode: 200,
    error: null,
    startedAt: new Date(),
    durationMs: 3,
    responseBody: 'ok',
    keep: true,
  });

  async function record(requests: RecordRequest[], text = RECORD_ATTEMPTS) {
    const { rows } = await db.pool.query(text, recordAttemptsValues(requests, LEASE_MS));
    return parseRows<RecordedAttempt>(rows);
  }

  /** The rows of `record` in the order of its requests, as the worker reads them. */
  async function recordInOrder(requests: RecordRequest[], text = RECORD_ATTEMPTS) {
    return (await record(requests, text)).sort((a, b) => a.nth - b.nth);
  }

  it('records each attempt behind its own fence, in the order given, and keeps each line', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, k, jsonb_build_object('k', k, 'n', n)
       FROM unnest(ARRAY['a', 'b', 'c']) k, generate_series(1, 2) n ORDER BY n, k`,
      [topic.id],
    );
    const [a, b, c] = await claimAll();
    const stale = { ...success(b), leaseToken: '00000000-0000-4000-8000-000000000000' };
    // Out of key order on purpose: the lines are locked, and the rows come back, in key order;
    // nth maps them to the requests.
    const rows = await record([success(c), stale, success(a)]);
    expect(rows.map((r) => [r.nth, r.partition_key])).toEqual([
      [3, 'a'],
      [2, null],
      [1, 'c'],
    ]);
    rows.sort((x, y) => x.nth - y.nth);

    expect(rows.map((r) => [r.fenced, r.partition_key, r.sequence])).toEqual([
      [true, 'c', '2'],
      [false, null, null],
      [true, 'a', '2'],
    ]);
    // The one behind a lost lease changed nothing, and says why.
    expect(rows[1]).toMatchObject({ still_held: false, recorded_before: false, line_exists: true });
    expect(JSON.parse(rows[0].body!)).toEqual({ k: 'c', n: 2 });
    const { rows: deliveries } = await db.pool.query(
      `SELECT d.partition_key, d.sequence::int, d.status, count(a.id)::int AS attempts
       FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
       WHERE d.webhook_id = $1 GROUP BY d.id ORDER BY d.partition_key, d.sequence`,
      [webhook.id],
    );
    expect(deliveries).toEqual([
      { partition_key: 'a', sequence: 1, status: 'delivered', attempts: 1 },
      { partition_key: 'a', sequence: 2, status: 'pending', attempts: 0 },
      { partition_key: 'b', sequence: 1, status: 'pending', attempts: 0 },
      { partition_key: 'b', sequence: 2, status: 'pending', attempts: 0 },
      { partition_key: 'c', sequence: 1, status: 'delivered', attempts: 1 },
      { partition_key: 'c', sequence: 2, status: 'pending', attempts: 0 },
    ]);

    // Sent again (a reply lost after the commit): nothing changes, and each row says so.
    const again = await recordInOrder([success(c), success(a)]);
    expect(again.map((r) => [r.fenced, r.still_held])).toEqual([
      [false, true],
      [false, true],
    ]);
    const { rows: counts } = await db.pool.query(
      `SELECT count(*)::int AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
       WHERE d.webhook_id = $1`,
      [webhook.id],
    );
    expect(counts).toEqual([{ n: 2 }]);
    // Nothing left leased for the next test.
    await db.pool.query(`DELETE FROM webhooks WHERE id = $1`, [webhook.id]);
  });

  it('passes over lines a producer holds (busy); one recorded alone waits, then reads after the lock', async () => {
    const topic = await createTopic(db.pool);
    await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, k, '{}' FROM unnest(ARRAY['x', 'y', 'z']) k`,
      [topic.id],
    );
    const [x, y, z] = await claimAll();
    // A producer's open transaction holds lines x and y (its upsert locks them until commit).
    const producer = await db.pool.connect();
    try {
      await producer.query('BEGIN');
      await producer.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, k, '{"late": true}' FROM unnest(ARRAY['y', 'x']) k`,
        [topic.id],
      );
      // The group call waits for neither: z is recorded, x and y come back busy, untouched.
      const grouped = await recordInOrder([success(y), success(z), success(x)]);
      expect(grouped.map((r) => [r.busy, r.fenced, r.partition_key])).toEqual([
        [true, null, null],
        [false, true, null], // recorded; nothing more on z, so not kept
        [true, null, null],
      ]);
      // Alone and told to wait, x waits for the producer (and holds no other line meanwhile).
      const alone = db.pool.query(
        RECORD_ATTEMPTS_ASYNC,
        recordAttemptsValues([success(x)], LEASE_MS, true),
      );
      await eventually(
        async () =>
          (
            await db.pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND query LIKE '%pgwq_record_attempts(%'`,
            )
          ).rows[0].n === 1,
        { what: 'the record to wait for the producer' },
      );
      await producer.query('COMMIT');
      const [row] = parseRows<RecordedAttempt>((await alone).rows);
      // Kept, one head on, and the new head's delivery is there: the statement's snapshot was
      // taken after the lock, so it sees what the producer committed.
      expect([row.busy, row.fenced, row.partition_key, row.sequence]).toEqual([
        false,
        true,
        'x',
        '2',
      ]);
      expect(JSON.parse(row.body!)).toEqual({ late: true });
    } finally {
      producer.release();
    }
  });
});
