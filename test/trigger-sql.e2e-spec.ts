import { readFileSync } from 'node:fs';
import { createTestDatabase, TEST_SCHEMA, TestDatabase } from './helpers/db.js';

/**
 * sql/notify_trigger.sql and sql/deliveries_triggers.sql must say exactly what the migrations
 * installed: every trigger function (the delivery path's functions are not a producer's
 * business; their migration is their copy).
 */
describe('sql/notify_trigger.sql and sql/deliveries_triggers.sql', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  const installed = async (client: { query: typeof db.pool.query }) => {
    const { rows } = await client.query<{ name: string; body: string }>(
      `SELECT p.proname AS name, pg_get_functiondef(p.oid) AS body FROM pg_proc p
       WHERE p.proname LIKE 'pgwq\\_%' AND p.prorettype = 'trigger'::regtype ORDER BY 1`,
    );
    const triggers = await client.query<{ def: string }>(
      `SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger
       WHERE tgrelid IN ('messages'::regclass, 'deliveries'::regclass) AND NOT tgisinternal
       ORDER BY tgname`,
    );
    return { functions: rows, triggers: triggers.rows };
  };

  it('matches the functions and triggers the migrations installed', async () => {
    const client = await db.pool.connect();
    try {
      const fromMigrations = await installed(client);
      expect(fromMigrations.functions.map((f) => f.name)).toEqual([
        'pgwq_assign_sequence',
        'pgwq_check_event_type',
        'pgwq_count_dead_change',
        'pgwq_count_dead_deleted',
        'pgwq_fan_out',
        'pgwq_log_delivered_attempt',
        'pgwq_refuse_moving_message',
        'pgwq_refuse_unprintable_payload',
      ]);
      await client.query('BEGIN');
      for (const file of ['notify_trigger.sql', 'deliveries_triggers.sql']) {
        await client.query(
          // The files pin public, as most install it; the run's schema stands in for it.
          readFileSync(new URL(`../sql/${file}`, import.meta.url), 'utf8').replaceAll(
            'search_path = public,',
            `search_path = ${TEST_SCHEMA},`,
          ),
        );
      }
      const fromFile = await installed(client);
      await client.query('ROLLBACK');
      expect(fromFile).toEqual(fromMigrations);
    } finally {
      client.release();
    }
  });

  it("pins every function's search_path to our schema, then pg_temp (issue 8, item 7)", async () => {
    const { rows } = await db.pool.query<{ name: string; config: string[] | null }>(
      `SELECT proname AS name, proconfig AS config FROM pg_proc
       WHERE proname LIKE 'pgwq\\_%' ORDER BY 1`,
    );
    expect(rows.length).toBeGreaterThan(0);
    // The planner settings some functions carry (each migration says why).
    const planner: Record<string, string[]> = {
      pgwq_assign_sequence: ['enable_seqscan=off'],
      pgwq_fan_out: ['enable_seqscan=off'],
    };
    for (const row of rows) {
      expect({ name: row.name, config: row.config }).toEqual({
        name: row.name,
        config: [`search_path=${TEST_SCHEMA}, pg_temp`, ...(planner[row.name] ?? [])],
      });
    }
  });
});
