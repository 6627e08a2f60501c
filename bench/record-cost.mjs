// What recording one delivered message costs the database, the worker's call against the floor
// of the contract (bench/lib/durable-record.mjs), with no HTTP and no worker around them:
//
//   npm run build && node bench/record-cost.mjs [--rounds 5] [--messages 1000]
//
// Each round and statement gets a fresh database (DATABASE_URL's server, else an embedded one)
// with `messages` messages on one key, and records them one after another from one connection,
// each in its own transaction: ours is RECORD_ATTEMPTS (pgwq_record_attempts) with one attempt
// that keeps the line, the floor is RECORD_DELIVERED. Prints the medians of the round trip and
// of the backend's CPU (/proc/<pid>/stat) per record, the WAL written per record, and the share
// of the updates of deliveries and delivery_lines that were heap-only (HOT: no index entries).
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { RECORD_DELIVERED } from './lib/durable-record.mjs';
import {
  cpuMs,
  createDatabase,
  median,
  now,
  ROOT,
  serverVersion,
  startDatabaseServer,
} from './lib/util.mjs';
import { rawRecorded } from './systems/index.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    messages: { type: 'string', default: '1000' },
  },
});
const rounds = Number(args.rounds);
const messages = Number(args.messages);
const { CLAIM_LINES, parseRows, RECORD_ATTEMPTS, recordAttemptsValues } = await import(
  join(ROOT, 'dist/delivery/delivery.sql.js')
);
const LEASE_MS = 60_000;
/** A first attempt answered 200 that keeps the line (RecordRequest but the line's own fields). */
const DELIVERED_KEEP = {
  outcome: 'delivered',
  retryDelaySeconds: 0,
  attempt: 1,
  statusCode: 200,
  error: null,
  durationMs: 1,
  responseBody: null,
  keep: true,
};

/** Records every message of the line, each in its own transaction. */
const statements = {
  async ours(client) {
    let [line] = parseRows((await client.query(CLAIM_LINES, [1, LEASE_MS, [], [], [], 10])).rows);
    for (let i = 1; i < messages; i++) {
      const request = {
        ...DELIVERED_KEEP,
        webhookId: line.webhook_id,
        partitionKey: line.partition_key,
        leaseToken: line.lease_token,
        head: line.sequence,
        deliveryId: line.delivery_id,
        startedAt: new Date(),
      };
      const rows = parseRows(
        (await client.query(RECORD_ATTEMPTS, recordAttemptsValues([request], LEASE_MS))).rows,
      );
      if (!rows[0].fenced || rows[0].lease_token === null) throw new Error('the line was not kept');
      line = rows[0];
    }
  },
  async floor(client, webhookId) {
    for (let sequence = 1; sequence < messages; sequence++) {
      await client.query({
        name: 'record_delivered',
        text: RECORD_DELIVERED,
        values: [webhookId, 'hot', sequence, 1, new Date(), 1],
      });
    }
  },
};

const server = await startDatabaseServer();
const results = Object.fromEntries(Object.keys(statements).map((k) => [k, []]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(statements)) {
      const db = await createDatabase(server.url, 'record');
      // The floor's schema, topic and webhook; the records go through their own connection.
      const ctx = await rawRecorded.prepare(db, 'http://127.0.0.1:9/');
      const client = new pg.Client({ connectionString: db.url });
      try {
        await client.connect();
        await ctx.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload)
           SELECT $1, 'hot', jsonb_build_object('pad', repeat('x', 1000)) FROM generate_series(1, $2)`,
          [ctx.topicId, messages],
        );
        await client.query('CHECKPOINT');
        const {
          rows: [session],
        } = await client.query(`SELECT pg_backend_pid() AS pid, pg_current_wal_lsn() AS lsn`);
        const cpuBefore = cpuMs(session.pid);
        const startedAt = now();
        await run(client, ctx.webhookIds[0]);
        const ms = now() - startedAt;
        const cpu = cpuMs(session.pid) - cpuBefore;
        const {
          rows: [wal],
        } = await client.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS bytes`, [
          session.lsn,
        ]);
        const records = messages - 1;
        // This backend's table counters, flushed at the end of the next statement.
        await client.query('SELECT pg_stat_force_next_flush()');
        const { rows: tables } = await client.query(
          `SELECT relname, n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot
           FROM pg_stat_user_tables WHERE relname IN ('deliveries', 'delivery_lines')`,
        );
        const hot = Object.fromEntries(tables.map((t) => [t.relname, t]));
        results[name].push({
          roundTripUs: (ms * 1000) / records,
          cpuUs: (cpu * 1000) / records,
          walBytes: Number(wal.bytes) / records,
          deliveriesHot: (100 * hot.deliveries.hot) / Math.max(hot.deliveries.upd, 1),
          linesHot: (100 * hot.delivery_lines.hot) / Math.max(hot.delivery_lines.upd, 1),
        });
        console.error(
          `round ${round + 1} ${name}: updates (HOT) deliveries ${hot.deliveries.upd} ` +
            `(${hot.deliveries.hot}), delivery_lines ${hot.delivery_lines.upd} ` +
            `(${hot.delivery_lines.hot})`,
        );
        console.error(
          `round ${round + 1} ${name}: ${Math.round((ms * 1000) / records)} µs a record, ` +
            `backend CPU ${Math.round((cpu * 1000) / records)} µs`,
        );
      } finally {
        await client.end();
        await rawRecorded.close(ctx);
        await db.drop();
      }
    }
  }
  const version = await serverVersion(server.url);
  console.log(
    `\nPostgreSQL ${version}${server.embedded ? ' (embedded)' : ''}; ${rounds} rounds of ` +
      `${messages - 1} records on one line, medians per record\n`,
  );
  console.log('| statement | round trip | backend CPU | WAL | HOT deliveries | HOT lines |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const label = { ours: 'ours (RECORD_ATTEMPTS, 1 attempt)', floor: 'floor (RECORD_DELIVERED)' };
  for (const [name, rows] of Object.entries(results)) {
    const m = (key) => Math.round(median(rows.map((r) => r[key])));
    console.log(
      `| ${label[name]} | ${m('roundTripUs')} µs | ${m('cpuUs')} µs | ${m('walBytes')} B | ` +
        `${m('deliveriesHot')}% | ${m('linesHot')}% |`,
    );
  }
} finally {
  await server.stop();
}
