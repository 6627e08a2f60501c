// Issue 10's scenarios of `npm run bench`:
// - batch (every run): the API's batch route against single publishes, side by side in one
//   database and one API process, messages/s;
// - retention (--full, or --only retention): a million delivered deliveries (with their
//   attempts and messages) deleted by the workers' retention while delivery and API publishing
//   run: how long it takes, and the delivery rate and publish latency before, during and after.
import autocannon from 'autocannon';
import { makePayload } from './lib/sender.mjs';
import { createDatabase, now, percentile, sleep } from './lib/util.mjs';
import { startApi } from './scenarios.mjs';
import { ours } from './systems/index.mjs';

/**
 * One round: single publishes (`connections` at once) and batches of `sizes` (fewer connections:
 * each carries `size` messages), each for `seconds`, alternating, into a topic with one webhook
 * (no worker: the deliveries wait). Returns messages/s per variant.
 */
export async function batchPublishRound(env, { seconds, connections, sizes }) {
  const db = await createDatabase(env.server.url, 'batch');
  const ctx = await ours.prepare(db, env.receiver.url, { webhooks: 1 });
  const { api, port } = await startApi(db.url);
  const out = {};
  try {
    const payload = JSON.stringify(makePayload(env.payloadBytes, 0));
    const run = async (path, conns, body, duration) => {
      let i = 0;
      const result = await autocannon({
        url: `http://127.0.0.1:${port}`,
        connections: conns,
        duration,
        requests: [
          {
            method: 'POST',
            path,
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: body(i++) }),
          },
        ],
      });
      if (result.non2xx > 0) env.log(`  ${path}: ${result.non2xx} non-2xx answers`);
      return result['2xx'];
    };
    const single = (i) => `{"partition_key":"p${i % 100}","payload":${payload}}`;
    const batches = new Map(
      sizes.map((size) => [
        size,
        `{"messages":[${Array.from(
          { length: size },
          (_, k) => `{"partition_key":"p${k % 100}","payload":${payload}}`,
        ).join(',')}]}`,
      ]),
    );
    // Warm every path once.
    await run('/topics/bench/messages', connections, single, 1);
    for (const [, body] of batches) await run('/topics/bench/messages/batch', 2, () => body, 1);

    const ok = await run('/topics/bench/messages', connections, single, seconds);
    out[`API single publishes x${connections} conns`] = ok / seconds;
    for (const [size, body] of batches) {
      const conns = Math.max(2, Math.min(connections, Math.round(2000 / size)));
      const okBatches = await run('/topics/bench/messages/batch', conns, () => body, seconds);
      out[`API batches of ${size} x${conns} conns`] = (okBatches * size) / seconds;
    }
  } finally {
    await api.stop();
    await ours.close(ctx);
    await db.drop();
  }
  return out;
}

/**
 * `rows` delivered deliveries finished 8 days ago, with one attempt each and their messages, over
 * 10,000 partitions whose lines have passed them, written directly (triggers off, as a restore
 * would) so the build takes seconds, not the fan-out's minutes.
 */
async function buildDeliveredHistory(pool, topicId, webhookId, rows) {
  const client = await pool.connect();
  try {
    await client.query(`SET session_replication_role = replica`);
    await client.query(
      `INSERT INTO messages (topic_id, partition_key, payload, sequence, created_at)
       SELECT $1, 'old' || (g % 10000), jsonb_build_object('event', 'bench.old', 'i', g, 'pad', repeat('x', 150)),
              g / 10000 + 1, now() - interval '9 days'
       FROM generate_series(0, $2 - 1) g`,
      [topicId, rows],
    );
    await client.query(
      `INSERT INTO deliveries (message_id, webhook_id, topic_id, partition_key, sequence, status,
                               attempts, last_status_code, created_at, delivered_at,
                               delivered_attempt_id, delivered_started_at, delivered_duration_ms)
       SELECT id, $2, topic_id, partition_key, sequence, 'delivered', 1, 200, created_at,
              now() - interval '8 days', nextval('logged_attempts_id_seq'),
              now() - interval '8 days', 5
       FROM messages WHERE topic_id = $1`,
      [topicId, webhookId],
    );
    await client.query(
      `INSERT INTO partition_sequences (topic_id, partition_key, last_sequence)
       SELECT $1, partition_key, max(sequence) FROM messages GROUP BY partition_key`,
      [topicId],
    );
    await client.query(
      `INSERT INTO delivery_lines (webhook_id, partition_key, topic_id, head_sequence, tail_sequence)
       SELECT $2, partition_key, $1, max(sequence) + 1, max(sequence) FROM messages
       GROUP BY partition_key`,
      [topicId, webhookId],
    );
    await client.query(`RESET session_replication_role`);
    for (const table of ['messages', 'deliveries', 'delivery_lines']) {
      await client.query(`VACUUM ANALYZE ${table}`);
    }
  } finally {
    client.release();
  }
}

/**
 * Delivery at full speed and API publishes at a steady rate, measured over one window: the
 * backlog is topped up (INSERT … SELECT of 1,000 on 100 live partitions) whenever fewer than
 * 3,000 wait, and one API publish goes every 20 ms (50/s), each timed. `until` ends the window.
 */
async function measureWindow(env, ctx, port, state, { minSeconds, done }) {
  const startDelivered = (await env.receiver.stats()).distinctOk;
  const started = now();
  const latencies = [];
  let stop = false;
  const loader = (async () => {
    while (!stop) {
      const delivered = (await env.receiver.stats()).distinctOk;
      if (state.published - delivered < 3000) {
        await ctx.pool.query(
          `INSERT INTO messages (topic_id, partition_key, payload)
           SELECT $1, 'live' || (g % 100), $2::jsonb FROM generate_series(1, 1000) g`,
          [ctx.topicId, state.body],
        );
        state.published += 1000;
      } else {
        await sleep(50);
      }
    }
  })();
  const prober = (async () => {
    for (let i = 0; !stop; i++) {
      const t = now();
      const res = await fetch(`http://127.0.0.1:${port}/topics/bench/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"partition_key":"probe${i % 10}","payload":${state.body}}`,
      });
      await res.arrayBuffer();
      if (res.status === 201) {
        latencies.push(now() - t);
        state.published++;
      }
      await sleep(Math.max(0, 20 - (now() - t)));
    }
  })();
  await sleep(minSeconds * 1000);
  while (!(await done())) await sleep(500);
  stop = true;
  await Promise.all([loader, prober]);
  const seconds = (now() - started) / 1000;
  const delivered = (await env.receiver.stats()).distinctOk - startDelivered;
  return {
    seconds,
    deliveryRate: delivered / seconds,
    publishP50: percentile(latencies, 50),
    publishP95: percentile(latencies, 95),
    publishP99: percentile(latencies, 99),
    publishes: latencies.length,
  };
}

/**
 * Retention at scale: `rows` old delivered deliveries; a worker without retention delivers and
 * the API publishes for a `windowSeconds` baseline; then a worker with retention (the default 7
 * days) takes over, measured until the last old row is gone; then another baseline window with
 * nothing left to delete.
 */
export async function retentionRun(env, { rows, windowSeconds, timeoutSeconds }) {
  const db = await createDatabase(env.server.url, 'retention');
  const ctx = await ours.prepare(db, env.receiver.url, { webhooks: 1 });
  try {
    const { rows: hooks } = await ctx.pool.query(`SELECT id FROM webhooks`);
    let t = now();
    await buildDeliveredHistory(ctx.pool, ctx.topicId, hooks[0].id, rows);
    const buildSeconds = (now() - t) / 1000;
    env.log(`  retention: built ${rows} delivered deliveries in ${buildSeconds.toFixed(0)} s`);
    const size = async () => {
      const { rows: r } = await ctx.pool.query(
        `SELECT pg_total_relation_size('deliveries') + pg_total_relation_size('messages')
                + pg_total_relation_size('logged_attempts') AS bytes`,
      );
      return Number(r[0].bytes);
    };
    const bytesBefore = await size();

    const { api, port } = await startApi(db.url);
    await env.receiver.reset({ delayMs: env.receiverDelayMs });
    const state = { published: 0, body: JSON.stringify(makePayload(env.payloadBytes, 0)) };
    const startWorker = (retentionSeconds) =>
      ours.startWorkers(ctx, {
        workers: 1,
        concurrency: env.concurrency,
        env: { ...env.oursEnv, RETENTION_DELIVERED_SECONDS: String(retentionSeconds) },
      });
    const oldLeft = async () => {
      const { rows: r } = await ctx.pool.query(
        `SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'delivered'
                        AND delivered_at < now() - interval '7 days') AS left`,
      );
      return r[0].left;
    };
    try {
      let worker = await startWorker(0);
      // A few seconds unmeasured first: connections, JIT, the backlog's first fill.
      await measureWindow(env, ctx, port, state, { minSeconds: 5, done: async () => true });
      const before = await measureWindow(env, ctx, port, state, {
        minSeconds: windowSeconds,
        done: async () => true,
      });
      await worker.stop();

      worker = await startWorker(7 * 24 * 3600);
      t = now();
      const during = await measureWindow(env, ctx, port, state, {
        minSeconds: 1,
        done: async () => !(await oldLeft()) || now() - t > timeoutSeconds * 1000,
      });
      const complete = !(await oldLeft());
      const deleteSeconds = (now() - t) / 1000;
      const after = await measureWindow(env, ctx, port, state, {
        minSeconds: windowSeconds,
        done: async () => true,
      });
      await worker.stop();
      const { rows: left } = await ctx.pool.query(
        `SELECT (SELECT count(*)::int FROM messages WHERE partition_key LIKE 'old%') AS messages,
                (SELECT count(*)::int FROM delivery_lines WHERE partition_key LIKE 'old%') AS lines,
                (SELECT count(*)::int FROM partition_sequences WHERE partition_key LIKE 'old%') AS counters`,
      );
      return {
        rows,
        complete,
        buildSeconds,
        deleteSeconds,
        deletedPerSecond: rows / deleteSeconds,
        before,
        during,
        after,
        oldMessagesLeft: left[0].messages,
        linesKept: left[0].lines,
        countersKept: left[0].counters,
        sizeBeforeMiB: bytesBefore / 2 ** 20,
        sizeAfterMiB: (await size()) / 2 ** 20,
      };
    } finally {
      await api.stop();
    }
  } finally {
    await ours.close(ctx);
    await db.drop();
  }
}
