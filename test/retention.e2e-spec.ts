import type { INestApplicationContext } from '@nestjs/common';
import pg from 'pg';
import { loadConfig } from '../src/config/app-config.js';
import { Maintenance, MAINTENANCE_LOCK_CLASS } from '../src/maintenance/maintenance.js';
import { Retention } from '../src/maintenance/retention.js';
import { WebhookPurge } from '../src/maintenance/webhook-purge.js';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { Receiver } from './helpers/receiver.js';
import { startInProcessWorker } from './helpers/worker.js';
import { searchPathOption } from '../src/database/schema.js';

const DAY = 24 * 3600;

/** DESIGN §7 "Retention" (issue 10, point 4). */
describe('retention', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });
  beforeEach(async () => {
    await db.pool.query('TRUNCATE topics CASCADE');
  });

  /** Maintenance with retention at these settings (days; 0 = off), driven batch by batch. */
  function retentionAt(deliveredDays: number, deadDays: number) {
    const retention = new Retention(
      loadConfig({
        RETENTION_DELIVERED_SECONDS: String(deliveredDays * DAY),
        RETENTION_DEAD_SECONDS: String(deadDays * DAY),
      }),
    );
    const maintenance = new Maintenance(db.pool, new WebhookPurge(), retention);
    return {
      retention,
      maintenance,
      /** Runs batches until retention has nothing left; returns how many ran. */
      async runUntilDone(): Promise<number> {
        for (let batches = 1; batches < 1000; batches++) {
          const result = await maintenance.runBatch(retention);
          if (result === 'done') return batches;
          expect(result).toBe('more');
        }
        throw new Error('retention never finished');
      },
    };
  }

  /**
   * Finishes deliveries as a worker would, `daysAgo` days ago: the delivery gets its status, time
   * and one attempt (a success stays on the delivery, a failure is logged), and the line's head
   * moves past it. The deliveries were created no later than that.
   */
  async function finish(ids: number[], status: 'delivered' | 'dead', daysAgo: number) {
    await db.pool.query(
      `WITH d AS (
         UPDATE deliveries
         SET status = $2, attempts = 1, next_attempt_at = NULL,
             created_at = least(created_at, now() - make_interval(days => $3)),
             delivered_at = CASE WHEN $2 = 'delivered' THEN now() - make_interval(days => $3) END,
             dead_at = CASE WHEN $2 = 'dead' THEN now() - make_interval(days => $3) END,
             last_status_code = CASE WHEN $2 = 'delivered' THEN 200 ELSE 500 END,
             delivered_attempt_id = CASE WHEN $2 = 'delivered' THEN nextval('logged_attempts_id_seq') END,
             delivered_started_at = CASE WHEN $2 = 'delivered' THEN now() - make_interval(days => $3) END,
             delivered_duration_ms = CASE WHEN $2 = 'delivered' THEN 5 END
         WHERE id = ANY($1::bigint[])
         RETURNING id, webhook_id, partition_key, sequence
       ), a AS (
         INSERT INTO logged_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
         SELECT id, 1, now() - make_interval(days => $3), 5, 500
         FROM d WHERE $2 = 'dead'
       )
       UPDATE delivery_lines l
       SET head_sequence = greatest(l.head_sequence, m.last + 1),
           next_attempt_at = CASE WHEN m.last + 1 <= l.tail_sequence THEN now() END
       FROM (SELECT webhook_id, partition_key, max(sequence) AS last FROM d
             GROUP BY webhook_id, partition_key) m
       WHERE l.webhook_id = m.webhook_id AND l.partition_key = m.partition_key`,
      [ids, status, daysAgo],
    );
  }

  /** The delivery ids of a webhook's partition, in sequence order. */
  async function deliveryIds(webhookId: number, key = 'k'): Promise<number[]> {
    const { rows } = await db.pool.query<{ id: string }>(
      'SELECT id FROM deliveries WHERE webhook_id = $1 AND partition_key = $2 ORDER BY sequence',
      [webhookId, key],
    );
    return rows.map((r) => Number(r.id));
  }

  async function remaining() {
    const { rows } = await db.pool.query(
      `SELECT (SELECT array_agg(sequence::int ORDER BY sequence) FROM messages) AS messages,
              (SELECT array_agg(webhook_id || ':' || sequence || ':' || status
                                ORDER BY webhook_id, sequence) FROM deliveries) AS deliveries,
              (SELECT count(*)::int FROM delivery_attempts) AS attempts`,
    );
    return rows[0] as { messages: number[] | null; deliveries: string[] | null; attempts: number };
  }

  async function sequencesAndLines() {
    const { rows } = await db.pool.query(
      `SELECT (SELECT json_agg(p ORDER BY p.partition_key) FROM partition_sequences p) AS counters,
              (SELECT json_agg(l ORDER BY l.webhook_id, l.partition_key) FROM delivery_lines l) AS lines`,
    );
    return rows[0];
  }

  it('deletes delivered deliveries older than the setting with their attempts, and messages left without one', async () => {
    const topic = await createTopic(db.pool);
    const [a, b] = [await createWebhook(db.pool, topic.id), await createWebhook(db.pool, topic.id)];
    for (let i = 0; i < 6; i++) await insertMessage(db.pool, topic.id, 'k', { i });
    const [aIds, bIds] = [await deliveryIds(a.id), await deliveryIds(b.id)];
    // Webhook a: 1-3 delivered 8 days ago, 4 delivered 6 days ago, 5-6 pending.
    await finish(aIds.slice(0, 3), 'delivered', 8);
    await finish([aIds[3]], 'delivered', 6);
    // Webhook b: 1-2 delivered 8 days ago, 3-6 pending (a line that is behind).
    await finish(bIds.slice(0, 2), 'delivered', 8);
    const before = await sequencesAndLines();

    await retentionAt(7, 30).runUntilDone();

    // Messages 1-2 had all their deliveries deleted; 3 still has b's pending one.
    expect(await remaining()).toEqual({
      messages: [3, 4, 5, 6],
      deliveries: [
        `${a.id}:4:delivered`,
        `${a.id}:5:pending`,
        `${a.id}:6:pending`,
        ...[3, 4, 5, 6].map((s) => `${b.id}:${s}:pending`),
      ],
      attempts: 1,
    });
    expect(await sequencesAndLines()).toEqual(before);
    // Numbering goes on where it was, and the new message reaches both lines.
    expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(7);
  });

  it('keeps dead deliveries until their own setting, and a dead head its line has not passed whatever its age', async () => {
    const topic = await createTopic(db.pool);
    const hook = await createWebhook(db.pool, topic.id);
    for (let i = 0; i < 4; i++) await insertMessage(db.pool, topic.id, 'k', { i });
    for (let i = 0; i < 2; i++) await insertMessage(db.pool, topic.id, 'blocked', { i });
    const ids = await deliveryIds(hook.id);
    await finish([ids[0]], 'dead', 31);
    await finish([ids[1]], 'dead', 20);
    await finish([ids[2]], 'delivered', 8);
    // A blocked line (on_exhausted = block): its head is dead and stays its head.
    const [blockedHead] = await deliveryIds(hook.id, 'blocked');
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now() - interval '60 days' WHERE id = $1`,
      [blockedHead],
    );

    await retentionAt(7, 30).runUntilDone();

    const { rows } = await db.pool.query(
      `SELECT d.partition_key, d.sequence::int, d.status, m.id IS NOT NULL AS has_message
       FROM deliveries d LEFT JOIN messages m ON m.id = d.message_id
       ORDER BY d.partition_key, d.sequence`,
    );
    expect(rows).toEqual([
      { partition_key: 'blocked', sequence: 1, status: 'dead', has_message: true },
      { partition_key: 'blocked', sequence: 2, status: 'pending', has_message: true },
      { partition_key: 'k', sequence: 2, status: 'dead', has_message: true },
      { partition_key: 'k', sequence: 4, status: 'pending', has_message: true },
    ]);
    // The dead-letter gauge's counts follow the deletion (its trigger).
    const gauge = await db.pool.query(
      'SELECT sum(dead)::int AS dead FROM dead_delivery_counts WHERE webhook_id = $1',
      [hook.id],
    );
    expect(gauge.rows[0].dead).toBe(2);
  });

  it('turns each part off with 0', async () => {
    const topic = await createTopic(db.pool);
    const hook = await createWebhook(db.pool, topic.id);
    for (let i = 0; i < 2; i++) await insertMessage(db.pool, topic.id, 'k', { i });
    const ids = await deliveryIds(hook.id);
    await finish([ids[0]], 'delivered', 400);
    await finish([ids[1]], 'dead', 400);
    const all = await remaining();

    expect(await retentionAt(0, 0).runUntilDone()).toBe(1);
    expect(await remaining()).toEqual(all);

    await retentionAt(0, 30).runUntilDone();
    expect((await remaining()).deliveries).toEqual([`${hook.id}:1:delivered`]);

    await retentionAt(7, 0).runUntilDone();
    expect(await remaining()).toEqual({ messages: null, deliveries: null, attempts: 0 });
  });

  it('sweeps away messages that never had a delivery once older than the delivered setting', async () => {
    const topic = await createTopic(db.pool);
    // A topic without webhooks: its messages have no delivery from the start.
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('i', g) FROM generate_series(1, 2500) g`,
      [topic.id],
    );
    await db.pool.query(
      `UPDATE messages SET created_at = now() - interval '8 days' WHERE sequence <= 2400`,
    );
    const { retention, maintenance } = retentionAt(7, 30);
    // A pass is a few steps (1,000 messages each), one per maintenance tick.
    await eventually(
      async () => {
        await maintenance.runBatch(retention);
        return (await remaining()).messages?.[0] === 2401;
      },
      { what: 'the old messages to be swept' },
    );
    expect((await remaining()).messages).toHaveLength(100);
    expect((await insertMessage(db.pool, topic.id, 'k')).sequence).toBe(2501);
  });

  it('works in batches of at most 1,000 deliveries, one batch at a time across workers', async () => {
    const topic = await createTopic(db.pool);
    const hook = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('i', g) FROM generate_series(1, 2500) g`,
      [topic.id],
    );
    await finish(await deliveryIds(hook.id), 'delivered', 8);
    const { retention, maintenance } = retentionAt(7, 30);

    // Another worker's batch holds the lock: this one skips its turn.
    const other = new pg.Client({ connectionString: db.url, ...searchPathOption(TEST_SCHEMA) });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT pg_advisory_xact_lock($1, $2)', [
        MAINTENANCE_LOCK_CLASS,
        retention.lockKey,
      ]);
      expect(await maintenance.runBatch(retention)).toBe('busy');
      await other.query('ROLLBACK');
    } finally {
      await other.end();
    }

    const counts = [];
    for (let i = 0; i < 4; i++) {
      expect(await maintenance.runBatch(retention)).toBe(i < 3 ? 'more' : 'done');
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM deliveries');
      counts.push(rows[0].n);
    }
    expect(counts).toEqual([1500, 500, 0, 0]);
    expect(await remaining()).toEqual({ messages: null, deliveries: null, attempts: 0 });
  });

  it('walks past old deliveries it keeps, a step a round, to the delivered ones behind them', async () => {
    const topic = await createTopic(db.pool);
    const stuck = await createWebhook(db.pool, topic.id);
    // First 1,500 deliveries nine days old and still pending (a webhook down for days)...
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'k', jsonb_build_object('i', g) FROM generate_series(1, 1500) g`,
      [topic.id],
    );
    await db.pool.query(`UPDATE deliveries SET created_at = now() - interval '9 days'`);
    // ...then 500 messages to it and to another webhook, which delivered them 8 days ago.
    const late = await createWebhook(db.pool, topic.id);
    await db.pool.query(
      `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, 'j', jsonb_build_object('i', g) FROM generate_series(1, 500) g`,
      [topic.id],
    );
    await finish(await deliveryIds(late.id, 'j'), 'delivered', 8);
    const count = async (webhookId: number) =>
      (
        await db.pool.query('SELECT count(*)::int AS n FROM deliveries WHERE webhook_id = $1', [
          webhookId,
        ])
      ).rows[0].n;
    const { retention, maintenance } = retentionAt(7, 30);

    // A round: batches while there are more. The first step looks at 1,000 old deliveries to keep,
    // and ends the first round.
    const round = async () => {
      while ((await maintenance.runBatch(retention)) === 'more');
    };
    await round();
    expect(await count(late.id)).toBe(500);
    // The next rounds go on where it was (a step of 1,000 a round while it deletes nothing).
    for (let rounds = 1; rounds < 4 && (await count(late.id)) > 0; rounds++) await round();
    expect(await count(late.id)).toBe(0);
    expect(await count(stuck.id)).toBe(2000);
  });

  describe('run by the workers', () => {
    let worker: INestApplicationContext | undefined;
    let receiver: Receiver | undefined;
    afterEach(async () => {
      await worker?.close();
      await receiver?.close();
    });

    it('deletes what a worker delivered once it is older than the setting, and numbering goes on', async () => {
      receiver = await Receiver.start();
      const topic = await createTopic(db.pool);
      const hook = await createWebhook(db.pool, topic.id, receiver.url);
      worker = await startInProcessWorker(db.url, { RETENTION_DELIVERED_SECONDS: '1' });
      for (let i = 0; i < 20; i++) await insertMessage(db.pool, topic.id, `k${i % 2}`, { i });
      await eventually(async () => (await remaining()).messages === null, {
        timeoutMs: 30_000,
        what: 'the delivered messages to be deleted',
      });
      expect(receiver.arrivals).toHaveLength(20);

      const next = await insertMessage(db.pool, topic.id, 'k0');
      expect(next.sequence).toBe(11);
      await eventually(() => receiver!.where('webhook-sequence', '11')[0], {
        what: 'message 11 to arrive',
      });
      // The head moves on when the worker records message 11, a moment after it arrived.
      const heads = async () =>
        (
          await db.pool.query(
            'SELECT partition_key, head_sequence::int FROM delivery_lines WHERE webhook_id = $1 ORDER BY 1',
            [hook.id],
          )
        ).rows;
      await eventually(async () => (await heads())[0]?.head_sequence === 12, {
        what: 'message 11 to be recorded',
      });
      expect(await heads()).toEqual([
        { partition_key: 'k0', head_sequence: 12 },
        { partition_key: 'k1', head_sequence: 11 },
      ]);
    });
  });
});
