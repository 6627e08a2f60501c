// DESIGN §7 figures: a redrive of 100,000 dead deliveries, and what publishing and delivery on
// another webhook did meanwhile; the lines API's lag order on a webhook with 100,000 lines.
//
//   npm run build && DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/operations.mjs
//
// (DATABASE_URL: a server the bench may create and drop a database on; unset, an embedded one.)
// One worker (`node dist/worker.js`) and the API (`node dist/main.js`) run as child processes;
// the receiver is in this process. The plan goes to bench/results/operations.txt.
import http from 'node:http';
import { writeFileSync } from 'node:fs';
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

const DEAD = 100_000;
const DEAD_PARTITIONS = 1_000;
const LINES = 100_000;
const API_PORT = 18_765;

const server = await startDatabaseServer();
const db = await createDatabase(server.url, 'ops');
const env = {
  DATABASE_URL: db.url,
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  METRICS_PORT: '0',
  LOG_LEVEL: 'warn',
};
const processes = [];
const pool = new pg.Pool({ connectionString: db.url, max: 4 });

/** Arrivals per webhook path; for /b the delivery latency from the publish time in the body. */
const arrivals = { a: 0, b: [] };
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.url === '/b') arrivals.b.push({ at: now(), latency: now() - JSON.parse(body).t });
    else arrivals.a += 1;
    res.writeHead(204).end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${receiver.address().port}`;

function stats(xs) {
  const f = (x) => (x == null ? '-' : x.toFixed(1));
  return `p50 ${f(percentile(xs, 50))} ms, p99 ${f(percentile(xs, 99))} ms, max ${f(Math.max(...xs))} ms (n=${xs.length})`;
}

try {
  const migrate = startProcess(process.execPath, [join(ROOT, 'dist/migrate.js'), 'run'], env);
  await migrate.exited;
  const topic = async (name) =>
    (await pool.query('INSERT INTO topics (name) VALUES ($1) RETURNING id', [name])).rows[0].id;
  const webhook = async (topicId, path) =>
    (
      await pool.query(
        `INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3) RETURNING id`,
        [topicId, `${base}/${path}`, `whsec_${Buffer.alloc(32, 1).toString('base64')}`],
      )
    ).rows[0].id;
  const [ta, tb, tc] = [await topic('a'), await topic('b'), await topic('c')];
  const wa = await webhook(ta, 'a');
  await webhook(tb, 'b');
  const wc = await webhook(tc, 'c');

  // A weekend outage: 100,000 deliveries in 1,000 partitions, all dead, their lines idle.
  let t = now();
  await pool.query(
    `INSERT INTO messages (topic_id, partition_key, payload)
     SELECT $1, 'k' || (g % $3), '{"n": 1}' FROM generate_series(1, $2) g`,
    [ta, DEAD, DEAD_PARTITIONS],
  );
  await pool.query(
    `UPDATE deliveries SET status = 'dead', attempts = 5, dead_at = now() WHERE webhook_id = $1`,
    [wa],
  );
  await pool.query(
    `UPDATE delivery_lines SET head_sequence = tail_sequence + 1, next_attempt_at = NULL,
       head_created_at = NULL WHERE webhook_id = $1`,
    [wa],
  );
  // A paused webhook with 100,000 lines, one message each, for the lines API.
  await pool.query(`UPDATE webhooks SET status = 'paused' WHERE id = $1`, [wc]);
  await pool.query(
    `INSERT INTO messages (topic_id, partition_key, payload)
     SELECT $1, 'line-' || g, '{}' FROM generate_series(1, $2) g`,
    [tc, LINES],
  );
  await pool.query('VACUUM ANALYZE');
  console.log(`setup ${((now() - t) / 1000).toFixed(1)} s`);

  processes.push(startProcess(process.execPath, [join(ROOT, 'dist/worker.js')], env));
  processes.push(
    startProcess(process.execPath, [join(ROOT, 'dist/main.js')], {
      ...env,
      PORT: String(API_PORT),
      API_LISTEN_ADDRESS: '127.0.0.1',
    }),
  );
  const api = `http://127.0.0.1:${API_PORT}`;
  await until(async () => (await fetch(`${api}/health`).catch(() => null))?.ok, 30_000, 200);

  // Publishing on webhook b all along: one INSERT every 20 ms, its latency and its delivery's.
  const publishes = [];
  let publishing = true;
  const producer = (async () => {
    for (let i = 0; publishing; i++) {
      const started = now();
      await pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, $3::jsonb)`,
        [tb, `b${i % 10}`, JSON.stringify({ t: now() })],
      );
      publishes.push({ at: started, ms: now() - started });
      await sleep(20);
    }
  })();
  const phase = (from, to) => ({
    publish: publishes.filter((p) => p.at >= from && p.at < to).map((p) => p.ms),
    deliver: arrivals.b.filter((a) => a.at >= from && a.at < to).map((a) => a.latency),
  });

  await sleep(1000);
  const baselineFrom = now();
  await sleep(4000);
  const redriveFrom = now();
  const res = await fetch(`${api}/dead-letter/redrive`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ webhook_id: wa }),
  });
  const redriveTo = now();
  const redriven = (await res.json()).redriven;
  await sleep(4000);
  const afterTo = now();
  publishing = false;
  await producer;

  const lines = [];
  const say = (line) => {
    console.log(line);
    lines.push(line);
  };
  say(`PostgreSQL ${await serverVersion(db.url)}, 1 worker (WORKER_CONCURRENCY 10), API`);
  say(
    `redrive of ${redriven} dead deliveries (${DEAD_PARTITIONS} partitions, webhook a): ` +
      `HTTP ${res.status} in ${((redriveTo - redriveFrom) / 1000).toFixed(2)} s`,
  );
  for (const [name, from, to] of [
    ['before (4 s)', baselineFrom, redriveFrom],
    ['during the redrive', redriveFrom, redriveTo],
    ['4 s after', redriveTo, afterTo],
  ]) {
    const p = phase(from, to);
    say(`webhook b ${name}: publish ${stats(p.publish)}; delivery ${stats(p.deliver)}`);
  }
  say(`webhook a: ${arrivals.a} redriven deliveries arrived by 4 s after the redrive returned`);

  // The lines API's lag order on 100,000 lines: the statement's plan, then the HTTP call.
  const { listLines } = await import(join(ROOT, 'dist/lines/lines.sql.js'));
  const { rows } = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${listLines('lag')}`, [
    wc,
    null,
    '',
    100,
  ]);
  const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
  const times = [];
  for (let i = 0; i < 11; i++) {
    t = now();
    const page = await fetch(`${api}/webhooks/${wc}/lines?order=lag&limit=100`);
    await page.json();
    times.push(now() - t);
  }
  say(
    `GET /webhooks/{id}/lines?order=lag&limit=100 on ${LINES} lines: ` +
      `${/Execution Time: ([\d.]+) ms/.exec(plan)[1]} ms in PostgreSQL; HTTP ${stats(times)}`,
  );
  writeFileSync(
    join(ROOT, 'bench/results/operations.txt'),
    `${lines.join('\n')}\n\nEXPLAIN (ANALYZE, BUFFERS) of the lines query, order=lag, limit 100:\n${plan}\n`,
  );
  console.log(plan);
} finally {
  await Promise.all(processes.map((p) => p.stop()));
  await pool.end();
  receiver.close();
  await db.drop();
  await server.stop();
}
