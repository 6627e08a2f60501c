// The scenarios of `npm run bench` (delivery: delivery.mjs). Each run(...) does one round for one
// system and returns plain numbers; bench/run.mjs repeats rounds, takes medians and prints the table.
import autocannon from 'autocannon';
import { createServer } from 'node:net';
import pg from 'pg';
import { makePayload } from './lib/sender.mjs';
import { makeMessages, withSystem } from './delivery.mjs';
import { createDatabase, now, percentile, sleep, startProcess, until } from './lib/util.mjs';
import { ours } from './systems/index.mjs';

/**
 * Publish-to-arrival latency at a steady offered load: `rate` messages/s for `seconds`, each
 * published on its own (its own transaction, or its own POST for raw) and timed from just before
 * the publish call to its first 2xx at the receiver.
 */
export async function latencyRun(env, system, o) {
  return withSystem(env, system, 'lat', async (ctx) => {
    const workers = await system.startWorkers(ctx, {
      workers: 1,
      concurrency: env.concurrency,
      env: env.oursEnv,
    });
    try {
      // One message end to end first, so every connection and code path is warm.
      const warm = makeMessages(o.partitions, o.partitions, env.payloadBytes, 'warm');
      await env.receiver.reset({ delayMs: env.receiverDelayMs });
      for (const m of warm) await system.publish(ctx, m);
      await until(async () => (await env.receiver.stats()).distinctOk >= warm.length, 20_000);
      await env.receiver.reset({ delayMs: env.receiverDelayMs });

      const messages = makeMessages(Math.round(o.rate * o.seconds), o.partitions, env.payloadBytes);
      const sentAt = new Map();
      const inFlight = new Set();
      const t0 = now() + 50;
      for (let i = 0; i < messages.length; i++) {
        const wait = t0 + (i * 1000) / o.rate - now();
        if (wait > 0) await sleep(wait);
        const m = messages[i];
        sentAt.set(`${m.partition}:${m.sequence}`, now());
        const p = system.publish(ctx, m).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
      const done = await until(
        async () => (await env.receiver.stats()).distinctOk >= messages.length,
        30_000,
        100,
      );
      const s = await env.receiver.stats(true);
      const lat = [];
      for (const [key, t] of sentAt) {
        const at = s.okTimes[key];
        if (at != null) lat.push(at - t);
      }
      return {
        p50: done ? percentile(lat, 50) : null,
        p95: done ? percentile(lat, 95) : null,
        p99: done ? percentile(lat, 99) : null,
        delivered: s.distinctOk,
      };
    } finally {
      await workers.stop();
    }
  });
}

const PLAIN_TABLE = `CREATE TABLE bench_plain (topic_id integer, partition_key text, payload jsonb,
                     created_at timestamptz DEFAULT now())`;

/**
 * Copies of the messages and deliveries tables (columns, indexes, checks, foreign keys) without
 * triggers, numbered by a plain sequence: what DESIGN's tables cost before the gap-free
 * numbering and the lines, the floor of any SQL publish into them. 'messages, no triggers'
 * inserts the message alone, 'messages + 1 delivery, no triggers' the message and its one
 * webhook's delivery in one statement.
 */
const TABLES_WITHOUT_TRIGGERS = [
  `CREATE TABLE bench_messages (LIKE messages INCLUDING ALL)`,
  `ALTER TABLE bench_messages ADD FOREIGN KEY (topic_id) REFERENCES topics (id)`,
  `CREATE SEQUENCE bench_messages_sequence`,
  `CREATE TABLE bench_deliveries (LIKE deliveries INCLUDING ALL)`,
  `ALTER TABLE bench_deliveries ADD FOREIGN KEY (message_id) REFERENCES bench_messages (id),
     ADD FOREIGN KEY (webhook_id) REFERENCES webhooks (id)`,
];

/**
 * Direct SQL publish into one database with topics t0, t1, t3 (0, 1, 3 webhooks), an unindexed
 * plain table as the ceiling and the messages table without triggers as the floor: single-row
 * transactions from `producers` clients for `seconds`, and one 1,000-row INSERT (median of
 * `batches`).
 */
export async function sqlPublishRound(env, o) {
  const db = await createDatabase(env.server.url, 'pub');
  const ctx = await ours.prepare(db, env.receiver.url, { webhooks: 0 });
  const out = {};
  try {
    await ctx.pool.query(PLAIN_TABLE);
    for (const ddl of TABLES_WITHOUT_TRIGGERS) await ctx.pool.query(ddl);
    const targets = {
      plain: null,
      'messages, no triggers': null,
      'messages + 1 delivery, no triggers': null,
    };
    for (const hooks of [0, 1, 3]) {
      const { rows } = await ctx.pool.query(`INSERT INTO topics (name) VALUES ($1) RETURNING id`, [
        `t${hooks}`,
      ]);
      for (let i = 0; i < hooks; i++) {
        await ctx.pool.query(`INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3)`, [
          rows[0].id,
          env.receiver.url,
          'whsec_YmVuY2g=',
        ]);
      }
      targets[`${hooks} webhooks`] = rows[0].id;
    }
    // Routing: 3 webhooks of which one filters out the messages (typed order.created), and 3 of
    // which all do (the fan-out matches none: compare with 0 webhooks).
    for (const [target, filters] of [
      ['3 webhooks, 1 filters (typed)', 1],
      ['3 webhooks, none match (typed)', 3],
    ]) {
      const { rows } = await ctx.pool.query(`INSERT INTO topics (name) VALUES ($1) RETURNING id`, [
        `t3f${filters}`,
      ]);
      for (let i = 0; i < 3; i++) {
        await ctx.pool.query(
          `INSERT INTO webhooks (topic_id, url, secret, event_types) VALUES ($1, $2, $3, $4)`,
          [rows[0].id, env.receiver.url, 'whsec_YmVuY2g=', i < filters ? ['invoice.*'] : null],
        );
      }
      targets[target] = rows[0].id;
    }
    const { rows: hooks } = await ctx.pool.query(`SELECT id FROM webhooks WHERE topic_id = $1`, [
      targets['1 webhooks'],
    ]);
    // Each target's INSERT of the rows `select` gives (topic_id, partition_key, payload).
    const insert = (target, select) => {
      if (target === 'plain')
        return `INSERT INTO bench_plain (topic_id, partition_key, payload) ${select}`;
      if (target.endsWith('(typed)'))
        return `INSERT INTO messages (topic_id, partition_key, payload, event_type)
          SELECT s.*, 'order.created' FROM (${select}) AS s`;
      if (!target.endsWith('no triggers'))
        return `INSERT INTO messages (topic_id, partition_key, payload) ${select}`;
      const message = `INSERT INTO bench_messages (topic_id, partition_key, payload, sequence)
        SELECT s.*, nextval('bench_messages_sequence') FROM (${select}) AS s`;
      return target === 'messages, no triggers'
        ? message
        : `WITH m AS (${message} RETURNING *)
           INSERT INTO bench_deliveries (message_id, webhook_id, topic_id, partition_key, sequence)
           SELECT m.id, ${hooks[0].id}, m.topic_id, m.partition_key, m.sequence FROM m`;
    };
    const body = JSON.stringify(makePayload(env.payloadBytes, 0));
    const clients = await Promise.all(
      Array.from({ length: o.producers }, async () => {
        const c = new pg.Client({ connectionString: db.url });
        c.on('error', () => undefined);
        await c.connect();
        return c;
      }),
    );
    try {
      for (const [target, topicId] of Object.entries(targets)) {
        const sql = insert(target, `VALUES ($1::integer, $2::text, $3::jsonb)`);
        let count = 0;
        const stopAt = now() + o.seconds * 1000;
        await Promise.all(
          clients.map(async (c, k) => {
            for (let i = 0; now() < stopAt; i++) {
              await c.query({
                name: `pub_${target}`,
                text: sql,
                values: [topicId ?? targets['0 webhooks'], `p${(k * 7919 + i) % 100}`, body],
              });
              count++;
            }
          }),
        );
        out[`sql 1-row tx x${o.producers}: ${target}`] = count / o.seconds;

        const times = [];
        for (let b = 0; b < o.batches; b++) {
          const t = now();
          await clients[0].query(
            insert(
              target,
              `SELECT $1::integer, 'p' || (g % 100), $2::jsonb FROM generate_series(1, 1000) g`,
            ),
            [topicId ?? targets['0 webhooks'], body],
          );
          times.push(now() - t);
        }
        out[`sql 1000-row INSERT: ${target}`] = 1000 / (percentile(times, 50) / 1000);
      }
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }

    // The API: node dist/main.js on its own, autocannon from here.
    const { api, port } = await startApi(db.url);
    try {
      // Warm the API's code paths and connections before the first measured run.
      await autocannon({
        url: `http://127.0.0.1:${port}/topics/t0/messages`,
        method: 'POST',
        connections: o.apiConnections,
        duration: 1,
        headers: { 'content-type': 'application/json' },
        body: `{"partition_key":"warm","payload":${body}}`,
      });
      for (const hooks of [0, 1, 3]) {
        let i = 0;
        const result = await autocannon({
          url: `http://127.0.0.1:${port}`,
          connections: o.apiConnections,
          duration: o.apiSeconds,
          requests: [
            {
              method: 'POST',
              path: `/topics/t${hooks}/messages`,
              headers: { 'content-type': 'application/json' },
              setupRequest: (req) => ({
                ...req,
                body: `{"partition_key":"p${i++ % 100}","payload":${body}}`,
              }),
            },
          ],
        });
        const ok = result['2xx'];
        if (result.non2xx > 0) env.log(`  API t${hooks}: ${result.non2xx} non-2xx answers`);
        out[`API x${o.apiConnections} conns: ${hooks} webhooks`] = ok / o.apiSeconds;
      }
    } finally {
      await api.stop();
    }
  } finally {
    await ours.close(ctx);
    await db.drop();
  }
  return out;
}

/** `node dist/main.js` on a free loopback port, once /health answers; stop it with api.stop(). */
export async function startApi(databaseUrl) {
  const port = await freePort();
  const api = startProcess(process.execPath, ['dist/main.js'], {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    // Loopback only, where an API without keys may run.
    API_LISTEN_ADDRESS: '127.0.0.1',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  });
  const up = await until(
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/health`)).ok;
      } catch {
        return false;
      }
    },
    30_000,
    200,
  );
  if (!up) {
    await api.stop();
    throw new Error(`the API did not start: ${api.stderr()}`);
  }
  return { api, port };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}
