import {
  CLAIM_LINES,
  ClaimedLine,
  Outcome,
  parseRows,
  RECORD_ATTEMPTS,
  RecordedAttempt,
  recordAttemptsValues,
  RecordRequest,
} from '../src/delivery/delivery.sql.js';
import { createTestDatabase, TestDatabase } from './helpers/db.js';
import { createTopic, createWebhook } from './helpers/factories.js';

/**
 * A group of results is recorded set-based (two statements) while no webhook has limits, and by
 * the per-attempt loop otherwise; a lone delivered result has a statement of its own while no
 * webhook has limits, and goes through the loop otherwise. The same results, on the same state,
 * must come out the same every way, as a group or each alone: every row the calls return and
 * every row they write. Each line below is one rule.
 */
describe('recording results: the set-based, lone and per-attempt paths agree', () => {
  let db: TestDatabase;
  const LEASE_MS = 60_000;
  const STALE_TOKEN = '00000000-0000-4000-8000-000000000000';

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  /** Partition key → messages published on it. */
  const LINES: Record<string, number> = {
    kept: 3, // delivered, kept: its next head comes back
    last: 1, // delivered, nothing after it: let go
    failed: 2, // failed: the head stays, due after its delay
    dead: 2, // dead-lettered (the webhook moves on): kept, next head
    blocks: 2, // dead-lettered on a webhook that blocks: the line stops
    throttled: 1, // throttled: pending, counted apart
    stale: 1, // a lease someone else has now: not fenced, and says why
    rewound: 3, // an operator rewound the line meanwhile: recorded, then back to the rewind
    gap: 3, // the next sequence is no longer pending: the head skips it
    letgo: 2, // delivered, not to be kept (HEADS_IN_A_ROW): let go, due now
    busy: 1, // a producer's open transaction holds the line: busy, untouched
    paused: 2, // its webhook was paused meanwhile: recorded, not kept
    failing: 2, // its webhook was marked failing meanwhile: kept, and says so
  };
  const OUTCOME: Record<string, Outcome> = {
    failed: 'pending',
    dead: 'dead',
    blocks: 'dead',
    throttled: 'throttled',
  };

  /**
   * Builds the lines on a fresh topic, records the results (`alone`: each in a call of its own,
   * else in one group), and returns everything the calls did.
   */
  async function scenario(alone: boolean) {
    const topic = await createTopic(db.pool);
    const plain = await createWebhook(db.pool, topic.id);
    const blocking = await createWebhook(db.pool, topic.id);
    const paused = await createWebhook(db.pool, topic.id);
    const failing = await createWebhook(db.pool, topic.id);
    await db.pool.query(`UPDATE webhooks SET on_exhausted = 'block' WHERE id = $1`, [blocking.id]);
    const special: Record<string, number> = {
      blocks: blocking.id,
      paused: paused.id,
      failing: failing.id,
    };
    const hookOf = (key: string) => special[key] ?? plain.id;
    for (const [key, n] of Object.entries(LINES)) {
      await db.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, $2, jsonb_build_object('key', $2::text, 'n', n) FROM generate_series(1, $3) n`,
        [topic.id, key, n],
      );
    }
    const claimed = parseRows<ClaimedLine>(
      (await db.pool.query(CLAIM_LINES, [1000, LEASE_MS, [], [], [], 1000])).rows,
    );
    const mine = new Map(
      claimed
        .filter((l) => l.webhook_id === hookOf(l.partition_key))
        .map((l) => [l.partition_key, l]),
    );
    // What happened while the attempts were in flight.
    await db.pool.query(
      `UPDATE delivery_lines SET rewind_to = 1 WHERE webhook_id = $1 AND partition_key = 'rewound'`,
      [plain.id],
    );
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now()
       WHERE webhook_id = $1 AND partition_key = 'gap' AND sequence = 2`,
      [plain.id],
    );
    await db.pool.query(`UPDATE webhooks SET status = 'paused' WHERE id = $1`, [paused.id]);
    await db.pool.query(`UPDATE webhooks SET failing_since = now() WHERE id = $1`, [failing.id]);
    const requests: RecordRequest[] = Object.keys(LINES).map((key) => {
      const line = mine.get(key)!;
      const outcome = OUTCOME[key] ?? 'delivered';
      return {
        webhookId: line.webhook_id,
        partitionKey: key,
        leaseToken: key === 'stale' ? STALE_TOKEN : line.lease_token,
        head: line.sequence,
        outcome,
        retryDelaySeconds: outcome === 'pending' ? 30 : outcome === 'throttled' ? 120 : 0,
        deliveryId: line.delivery_id!,
        attempt: 1,
        statusCode: outcome === 'delivered' ? 200 : outcome === 'throttled' ? 429 : 500,
        error: outcome === 'delivered' || outcome === 'throttled' ? null : 'HTTP 500',
        startedAt: new Date('2026-01-02T03:04:05.678Z'),
        durationMs: 7,
        responseBody: `body of ${key}`,
        keep: key !== 'letgo',
      };
    });
    // Out of key order on purpose.
    requests.reverse();

    const producer = await db.pool.connect();
    let rows: RecordedAttempt[];
    try {
      await producer.query('BEGIN');
      await producer.query(
        `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, 'busy', '{}')`,
        [topic.id],
      );
      if (alone) {
        rows = [];
        for (const [i, request] of requests.entries()) {
          const one = parseRows<RecordedAttempt>(
            (await db.pool.query(RECORD_ATTEMPTS, recordAttemptsValues([request], LEASE_MS))).rows,
          );
          rows.push(...one.map((r) => ({ ...r, nth: i + 1 })));
        }
      } else {
        rows = parseRows<RecordedAttempt>(
          (await db.pool.query(RECORD_ATTEMPTS, recordAttemptsValues(requests, LEASE_MS))).rows,
        );
      }
    } finally {
      await producer.query('ROLLBACK');
      producer.release();
    }
    const tokenOf = new Map(requests.map((r) => [r.partitionKey, r.leaseToken]));
    const returned = rows
      .map((r) => {
        const key = requests[r.nth - 1].partitionKey;
        return {
          key,
          busy: r.busy,
          fenced: r.fenced,
          recorded: r.recorded,
          still_held: r.still_held,
          recorded_before: r.recorded_before,
          line_exists: r.line_exists,
          webhook_failing: r.webhook_failing,
          kept: r.lease_token === null ? null : r.lease_token === tokenOf.get(key),
          sequence: r.sequence,
          previous_sequence: r.previous_sequence,
          body: r.body,
          attempts: r.attempts,
          topic: r.topic === null ? null : r.topic === topic.name,
          failing: r.failing,
        };
      })
      .sort((a, b) => a.key.localeCompare(b.key));
    const hooks = [plain.id, blocking.id, paused.id, failing.id];
    // The lines the group recorded.
    const { rows: lines } = await db.pool.query(
      `SELECT l.partition_key, l.head_sequence::int, l.tail_sequence::int, l.blocked,
              l.rewind_to::int,
              CASE WHEN l.lease_token IS NULL THEN 'none'
                   WHEN l.lease_token::text = ANY($3) THEN 'ours' ELSE 'other' END AS lease,
              round(extract(epoch FROM l.next_attempt_at - now()))::int AS due_in,
              l.head_created_at IS NULL AS no_head_time
       FROM delivery_lines l
       JOIN unnest($1::int[], $2::text[]) AS r (webhook_id, partition_key)
         ON r.webhook_id = l.webhook_id AND r.partition_key = l.partition_key
       ORDER BY l.partition_key`,
      [
        requests.map((r) => r.webhookId),
        requests.map((r) => r.partitionKey),
        [...tokenOf.values()],
      ],
    );
    const { rows: deliveries } = await db.pool.query(
      `SELECT d.partition_key, d.sequence::int, d.webhook_id = $2 AS blocking,
              d.webhook_id = $3 AS paused, d.status, d.attempts, d.throttled_attempts,
              d.throttled_since IS NOT NULL AS throttled,
              round(extract(epoch FROM d.next_attempt_at - now()))::int AS due_in,
              d.last_status_code, d.last_error, d.delivered_at IS NOT NULL AS delivered,
              d.dead_at IS NOT NULL AS dead,
              (SELECT json_agg(json_build_object('attempt', a.attempt, 'code', a.status_code,
                        'error', a.error, 'body', a.response_body, 'ms', a.duration_ms,
                        'at', a.started_at) ORDER BY a.id)
               FROM delivery_attempts a WHERE a.delivery_id = d.id) AS attempt_rows
       FROM deliveries d WHERE d.webhook_id = ANY($1)
       ORDER BY d.webhook_id, d.partition_key, d.sequence`,
      [hooks, blocking.id, paused.id],
    );
    // Nothing of this scenario left leased for the next one.
    await db.pool.query(`DELETE FROM webhooks WHERE id = ANY($1)`, [hooks]);
    return { returned, lines, deliveries };
  }

  it('returns and writes the same, row for row', async () => {
    // Any webhook_limits row sends every result through the per-attempt loop.
    const topic = await createTopic(db.pool);
    const limited = await createWebhook(db.pool, topic.id);
    await db.pool.query(`INSERT INTO webhook_limits (webhook_id, tokens) VALUES ($1, 1)`, [
      limited.id,
    ]);
    const perAttempt = await scenario(false);
    const perAttemptAlone = await scenario(true);
    await db.pool.query(`DELETE FROM webhook_limits`);
    const setBased = await scenario(false);
    const lone = await scenario(true);

    expect(perAttemptAlone).toEqual(perAttempt);
    expect(setBased).toEqual(perAttempt);
    expect(lone).toEqual(perAttempt);
    // And what they agree on is what each rule says.
    const byKey = new Map(setBased.returned.map((r) => [r.key, r]));
    expect(byKey.get('kept')).toMatchObject({ fenced: true, kept: true, sequence: '2' });
    expect(byKey.get('last')).toMatchObject({ fenced: true, kept: null });
    expect(byKey.get('dead')).toMatchObject({ fenced: true, kept: true, sequence: '2' });
    expect(byKey.get('gap')).toMatchObject({ fenced: true, kept: true, sequence: '3' });
    expect(byKey.get('gap')!.previous_sequence).toBe('2');
    expect(byKey.get('failing')).toMatchObject({
      fenced: true,
      kept: true,
      webhook_failing: true,
      failing: true,
    });
    expect(byKey.get('stale')).toMatchObject({
      fenced: false,
      still_held: false,
      recorded_before: false,
      line_exists: true,
    });
    expect(byKey.get('busy')).toMatchObject({ busy: true, fenced: null, recorded: null });
    for (const key of ['failed', 'blocks', 'throttled', 'rewound', 'letgo', 'paused']) {
      expect(byKey.get(key)).toMatchObject({ fenced: true, recorded: 1, kept: null });
    }
    const line = (key: string) => setBased.lines.find((l) => l.partition_key === key);
    expect(line('blocks')).toMatchObject({ blocked: true, due_in: null });
    expect(line('failed')).toMatchObject({ head_sequence: 1, lease: 'none', due_in: 30 });
    expect(line('throttled')).toMatchObject({ head_sequence: 1, due_in: 120 });
    expect(line('rewound')).toMatchObject({ head_sequence: 1, lease: 'none', due_in: 0 });
    expect(line('letgo')).toMatchObject({ head_sequence: 2, lease: 'none', due_in: 0 });
    expect(line('busy')).toMatchObject({ head_sequence: 1, lease: 'ours' });
  });
});
