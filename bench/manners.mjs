// The "manners" scenario of `npm run bench`: ordered delivery to a webhook without limits while a
// webhook of the same workers has a backlog it may only take at rate_limit_per_second. The
// unlimited one's rate must not suffer: it is measured beside the limited one and alone, in the
// same round. Ours only (the limits are ours).
import { makeMessages } from './delivery.mjs';
import { createDatabase, now, until } from './lib/util.mjs';
import { ours } from './systems/index.mjs';

const LIMITED_TOPIC = 'bench-limited';

/**
 * One round: `messages` over `partitions` keys to the unlimited webhook, and, when `rate` is set,
 * a backlog of `rate` × 120 messages over `limitedPartitions` keys to a webhook limited to `rate`
 * per second, published first so its lines are the oldest due ones. Returns the unlimited
 * webhook's msg/s (first arrival to last first-2xx) and the limited one's over the same window.
 */
export async function mannersRun(env, system, o) {
  const db = await createDatabase(env.server.url, 'manners');
  const ctx = await system.prepare(db, env.receiver.url, { webhooks: 1 });
  try {
    await env.receiver.reset({ delayMs: env.receiverDelayMs });
    const unlimited = makeMessages(o.messages, o.partitions, env.payloadBytes, 'u');
    if (o.rate) {
      const { rows } = await ctx.pool.query(
        `WITH t AS (INSERT INTO topics (name) VALUES ($1) RETURNING id)
         INSERT INTO webhooks (topic_id, url, secret, rate_limit_per_second)
         SELECT t.id, w.url, w.secret, $2 FROM t, webhooks w WHERE w.topic_id = $3
         RETURNING id, topic_id`,
        [LIMITED_TOPIC, o.rate, ctx.topicId],
      );
      // What POST /webhooks does for a webhook with limits: its bucket, full.
      await ctx.pool.query(
        `INSERT INTO webhook_limits (webhook_id, tokens) VALUES ($1, greatest(1, $2::float8))`,
        [rows[0].id, o.rate],
      );
      const limited = makeMessages(o.rate * 120, o.limitedPartitions, env.payloadBytes, 'r');
      await ctx.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
         SELECT $1, k, p::jsonb FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, p, n)
         ORDER BY n`,
        [rows[0].topic_id, limited.map((m) => m.partition), limited.map((m) => m.body)],
      );
    }
    const workers = await system.startWorkers(ctx, {
      workers: o.workers,
      concurrency: env.concurrency,
      env: env.oursEnv,
    });
    try {
      await system.enqueue(ctx, unlimited);
      const startedAt = now();
      const done = await until(
        async () => {
          const s = await env.receiver.stats(true);
          const u = Object.keys(s.okTimes).filter((k) => k.startsWith('u')).length;
          return u >= unlimited.length;
        },
        env.timeoutMs,
        100,
      );
      const { okTimes } = await env.receiver.stats(true);
      const times = (prefix) =>
        Object.entries(okTimes)
          .filter(([k]) => k.startsWith(prefix))
          .map(([, t]) => t);
      const u = times('u');
      const first = Math.min(...u, startedAt);
      const last = Math.max(...u);
      const seconds = (last - first) / 1000;
      const limitedInWindow = times('r').filter((t) => t >= first && t <= last).length;
      return {
        complete: done,
        unlimited: seconds > 0 ? u.length / seconds : null,
        limited: o.rate && seconds > 0 ? limitedInWindow / seconds : null,
      };
    } finally {
      await workers.stop();
    }
  } finally {
    await system.close(ctx);
    await db.drop();
  }
}

/**
 * One round of the scenario for bench/run.mjs: the unlimited webhook alone, and beside one
 * limited to 5/s whose backlog (older than its own) the claim must pass over without slowing it.
 * 5/s, so that on a small machine the limited webhook's own deliveries take little of its share.
 */
export async function mannersRound(env, round, { messages, record, safely }) {
  for (const rate of round % 2 ? [5, undefined] : [undefined, 5]) {
    const r = await safely('manners', () =>
      mannersRun(env, ours, { messages, partitions: 100, limitedPartitions: 20, workers: 1, rate }),
    );
    const beside = rate ? `beside a webhook limited to ${rate}/s` : 'alone';
    env.log(
      `  manners ${beside}: unlimited ${r?.unlimited?.toFixed(0)} msg/s` +
        (rate ? `, limited ${r?.limited?.toFixed(1)} msg/s` : ''),
    );
    const scenario = 'ordered delivery, per-webhook limits';
    record(
      scenario,
      `${messages} msgs / 100 partitions to an unlimited webhook, ${beside}`,
      ours.name,
      'msg/s',
      r?.unlimited ?? null,
    );
    if (rate) {
      record(
        scenario,
        `the webhook limited to ${rate}/s meanwhile`,
        ours.name,
        'msg/s',
        r?.limited ?? null,
      );
    }
  }
}
