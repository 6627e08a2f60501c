// Issue 22 items 3 and 4: the worst publish latency while the API replays one line of 300,000
// deliveries, and while it pauses and resumes a webhook with 100,000 lines.
//
//   npm run build && DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/operator-latency.mjs
//
// (DATABASE_URL: a server the bench may create and drop a database on; unset, an embedded one.)
// The API (`node dist/main.js`) runs as a child process; no worker, so nothing but the operator
// action and the producer touches the lines. The producer inserts one message every 10 ms: into
// the replayed partition itself during the replay, into new partitions of the paused webhook's
// topic during the pause and the resume.
import { join } from 'node:path';
import pg from 'pg';
import {
  createDatabase,
  now,
  percentile,
  ROOT,
  serverVersion,
  sleep,
  startDatabaseServer,
  startProcess,
  until,
} from './lib/util.mjs';

const REPLAYED = 300_000;
const LINES = 100_000;
const API_PORT = 18_766;

const server = await startDatabaseServer();
const db = await createDatabase(server.url, 'oplat');
const env = { DATABASE_URL: db.url, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true', LOG_LEVEL: 'warn' };
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
let api;
try {
  await startProcess(process.execPath, [join(ROOT, 'dist/migrate.js'), 'run'], env).exited;
  const id = async (sql, values) => (await pool.query(sql, values)).rows[0].id;
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const t1 = await id(`INSERT INTO topics (name) VALUES ('replayed') RETURNING id`);
  const w1 = await id(
    `INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, 'http://127.0.0.1:9/a', $2) RETURNING id`,
    [t1, secret],
  );
  const t2 = await id(`INSERT INTO topics (name) VALUES ('paused') RETURNING id`);
  const w2 = await id(
    `INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, 'http://127.0.0.1:9/b', $2) RETURNING id`,
    [t2, secret],
  );
  let t = now();
  await pool.query(
    `INSERT INTO messages (topic_id, partition_key, payload)
     SELECT $1, 'big', '{}' FROM generate_series(1, $2)`,
    [t1, REPLAYED],
  );
  await pool.query(
    `UPDATE deliveries SET status = 'delivered', attempts = 1, delivered_at = now()
     WHERE webhook_id = $1`,
    [w1],
  );
  await pool.query(
    `UPDATE delivery_lines SET head_sequence = tail_sequence + 1, next_attempt_at = NULL,
       head_created_at = NULL WHERE webhook_id = $1`,
    [w1],
  );
  await pool.query(
    `INSERT INTO messages (topic_id, partition_key, payload)
     SELECT $1, 'line-' || g, '{}' FROM generate_series(1, $2) g`,
    [t2, LINES],
  );
  await pool.query('VACUUM ANALYZE');
  console.log(`setup ${((now() - t) / 1000).toFixed(1)} s`);

  api = startProcess(process.execPath, [join(ROOT, 'dist/main.js')], {
    ...env,
    PORT: String(API_PORT),
    API_LISTEN_ADDRESS: '127.0.0.1',
  });
  const base = `http://127.0.0.1:${API_PORT}`;
  await until(async () => (await fetch(`${base}/health`).catch(() => null))?.ok, 30_000, 200);
  const call = async (method, path, body) => {
    const started = now();
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json(), ms: now() - started };
  };

  /** Publishes every 10 ms with `target()` while `action` runs; its latencies and its result. */
  async function during(target, action) {
    const latencies = [];
    let running = true;
    const producer = (async () => {
      for (let i = 0; running; i++) {
        const [topicId, key] = target(i);
        const started = now();
        await pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, '{}')`,
          [topicId, key],
        );
        latencies.push(now() - started);
        await sleep(10);
      }
    })();
    await sleep(200);
    const result = await action();
    running = false;
    await producer;
    return { result, latencies };
  }
  const stats = (xs) =>
    `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms, ` +
    `max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;

  console.log(`PostgreSQL ${await serverVersion(db.url)}`);
  const replay = await during(
    () => [t1, 'big'],
    () => call('POST', `/webhooks/${w1}/replay`, { partition_key: 'big', from_sequence: 1 }),
  );
  console.log(
    `replay of one line, ${replay.result.body.replayed} deliveries: HTTP ${replay.result.status} ` +
      `in ${(replay.result.ms / 1000).toFixed(2)} s; publishes to that partition meanwhile: ` +
      stats(replay.latencies),
  );
  for (const status of ['paused', 'active']) {
    const patch = await during(
      (i) => [t2, `new-${status}-${i}`],
      () => call('PATCH', `/webhooks/${w2}`, { status }),
    );
    console.log(
      `PATCH {status: ${status}} on ${LINES} lines: HTTP ${patch.result.status} in ` +
        `${(patch.result.ms / 1000).toFixed(2)} s; publishes to new partitions of its topic ` +
        `meanwhile: ${stats(patch.latencies)}`,
    );
  }
  const { rows } = await pool.query(
    `SELECT count(*) FILTER (WHERE next_attempt_at IS NOT NULL)::int AS due FROM delivery_lines
     WHERE webhook_id = $1`,
    [w2],
  );
  console.log(`lines of the resumed webhook due: ${rows[0].due}`);
} finally {
  await api?.stop();
  await pool.end();
  await db.drop();
  await server.stop();
}
