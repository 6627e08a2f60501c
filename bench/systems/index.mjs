// The systems under test, behind one small interface the scenarios drive:
//   prepare(db, receiverUrl, {webhooks}) → ctx      schema, topic/queue, webhook(s)
//   enqueue(ctx, messages)                          the whole backlog, committed
//   startWorkers(ctx, {workers, concurrency, env, nodeArgs?}) → {stop(), pids}; resolves once ready
//   publish(ctx, message)                           one message, its own transaction
//   close(ctx)
// A message is {id, topic, partition, sequence, payload (object), body (its JSON text)}.
import { join } from 'node:path';
import pg from 'pg';
import { BENCH_SECRET, makeClient, postWebhook } from '../lib/sender.mjs';
import { forkModule, ROOT, startProcess, until } from '../lib/util.mjs';

const TOPIC = 'bench';

/** The bench's own connections go by this name, so its CPU is not counted as the system's. */
export const BENCH_APPLICATION_NAME = 'pgwq-bench';

function newPool(url, max = 4) {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    application_name: BENCH_APPLICATION_NAME,
  });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Webhook `i` (0-based) of `webhooks` on the bench's receiver: the receiver's URL itself when
 * there is one, else with a query string that names it, so the receiver tells the webhooks apart.
 */
export const webhookUrl = (receiverUrl, i, webhooks) =>
  webhooks === 1 ? receiverUrl : `${receiverUrl}?webhook=${i + 1}`;

/** Waits until `n` sessions of the database LISTEN (our worker and graphile-worker do). */
async function listeners(pool, database, n, timeoutMs = 30_000) {
  return until(async () => {
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'listen%'`,
      [database],
    );
    return rows[0].n >= n;
  }, timeoutMs);
}

/**
 * Ours as built in `root` (a checkout with its dist/): the bench's own checkout, or with
 * `--baseline DIR` another one, so a change is measured against its base side by side.
 */
function oursBuiltIn(root, name) {
  return {
    name,
    async prepare(db, receiverUrl, { webhooks = 1 } = {}) {
      const { runMigrations } = await import(join(root, 'dist/database/migrate.js'));
      await runMigrations(db.url);
      const pool = newPool(db.url, 10);
      const { rows } = await pool.query(`INSERT INTO topics (name) VALUES ($1) RETURNING id`, [
        TOPIC,
      ]);
      const topicId = rows[0].id;
      for (let i = 0; i < webhooks; i++) {
        await pool.query(`INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3)`, [
          topicId,
          webhookUrl(receiverUrl, i, webhooks),
          BENCH_SECRET,
        ]);
      }
      return { db, pool, topicId };
    },
    async enqueue(ctx, messages) {
      // One statement: the BEFORE ROW trigger numbers the rows in input order (WITH ORDINALITY),
      // the statement trigger fans them out at once.
      await ctx.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload)
       SELECT $1, k, p::jsonb FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(k, p, n)
       ORDER BY n`,
        [ctx.topicId, messages.map((m) => m.partition), messages.map((m) => m.body)],
      );
    },
    async startWorkers(ctx, { workers, concurrency, env = {}, nodeArgs = [] }) {
      const procs = Array.from({ length: workers }, (_, i) =>
        startProcess(
          process.execPath,
          [...nodeArgs, 'dist/worker.js'],
          {
            DATABASE_URL: ctx.db.url,
            WORKER_CONCURRENCY: String(concurrency),
            WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
            POLL_INTERVAL_MS: '1000',
            METRICS_PORT: '0', // several workers on one host
            ...env,
          },
          { label: `${name}-worker-${i}`, cwd: root },
        ),
      );
      const ready = await listeners(ctx.pool, ctx.db.name, workers, 20_000);
      return {
        ready,
        pids: procs.map((p) => p.child.pid),
        stop: () => Promise.all(procs.map((p) => p.stop())),
        errors: () => procs.map((p) => p.stderr()).join(''),
      };
    },
    async publish(ctx, m) {
      await ctx.pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload) VALUES ($1, $2, $3::jsonb)`,
        [ctx.topicId, m.partition, m.body],
      );
    },
    async close(ctx) {
      await ctx.pool.end();
    },
  };
}

export const ours = oursBuiltIn(ROOT, 'ours');

/** Ours as built in another checkout (`--baseline DIR`). */
export const oursBaseline = (root) => oursBuiltIn(root, 'ours, baseline');

/**
 * Ours with the workers' DATABASE_URL through a transaction-mode PgBouncer (`bouncer`, from
 * dist/database/pgbouncer.js) and LISTEN on its own direct connection, as the README's "Behind a
 * pooler" says.
 */
export function oursThroughPgBouncer(bouncer) {
  return {
    ...ours,
    name: 'ours via PgBouncer',
    startWorkers: (ctx, o) =>
      ours.startWorkers(ctx, {
        ...o,
        env: {
          ...o.env,
          DATABASE_URL: bouncer.url(ctx.db.name),
          DATABASE_LISTEN_URL: ctx.db.url,
        },
      }),
  };
}

/**
 * Ours with RECORD_SYNCHRONOUS_COMMIT=false: results commit without waiting for the WAL flush
 * (docs/delivery.md, "Synchronous commit of results", says what a crash of PostgreSQL can then cause).
 */
export const oursAsyncCommit = {
  ...ours,
  name: 'ours, async commit',
  startWorkers: (ctx, o) =>
    ours.startWorkers(ctx, { ...o, env: { ...o.env, RECORD_SYNCHRONOUS_COMMIT: 'false' } }),
};

function runnerSystem(name, runnerFile, { setup, enqueue, publish }) {
  return {
    name,
    async prepare(db, receiverUrl, { webhooks = 1 } = {}) {
      const pool = newPool(db.url, 4);
      const ctx = { db, pool, receiverUrl, webhooks };
      await setup(ctx);
      return ctx;
    },
    enqueue,
    publish,
    async startWorkers(ctx, { workers, concurrency, env = {} }) {
      const procs = Array.from({ length: workers }, () =>
        forkModule(join(ROOT, 'bench/systems', runnerFile), {
          DATABASE_URL: ctx.db.url,
          RECEIVER_URL: ctx.receiverUrl,
          CONCURRENCY: String(concurrency),
          ...env,
        }),
      );
      await Promise.all(procs.map((p) => p.next((m) => m.ready)));
      return {
        ready: true,
        pids: procs.map((p) => p.child.pid),
        stop: () => Promise.all(procs.map((p) => p.stop())),
        errors: () => '',
      };
    },
    async close(ctx) {
      await ctx.pool.end();
    },
  };
}

const toJob = (m) => ({
  id: m.id,
  topic: m.topic,
  partition: m.partition,
  sequence: m.sequence,
  body: m.body,
});

/**
 * graphile-worker 0.17: one job per delivery, queue_name = the partition (its serial queues), with
 * its default settings. With several webhooks, one job per (message, webhook) carrying the
 * webhook's URL, in a queue per (webhook, partition): each line keeps its order.
 */
export const graphileDefault = runnerSystem('graphile-worker', 'graphile-runner.mjs', {
  async setup(ctx) {
    const { runMigrations } = await import('graphile-worker');
    await runMigrations({ connectionString: ctx.db.url });
  },
  async enqueue(ctx, messages) {
    const jobs =
      ctx.webhooks === 1
        ? messages.map((m) => ({ payload: toJob(m), queue: m.partition }))
        : messages.flatMap((m) =>
            Array.from({ length: ctx.webhooks }, (_, i) => ({
              payload: { ...toJob(m), url: webhookUrl(ctx.receiverUrl, i, ctx.webhooks) },
              queue: `webhook${i + 1}:${m.partition}`,
            })),
          );
    // add_jobs takes the whole batch in one call; ids (and so run order within a queue) follow
    // the array's order.
    await ctx.pool.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(
         ARRAY(SELECT ROW('deliver', e.v -> 'payload', e.v ->> 'queue', NULL, 25, NULL, NULL, NULL)::graphile_worker.job_spec
               FROM json_array_elements($1::json) WITH ORDINALITY AS e(v, n)
               ORDER BY e.n))`,
      [JSON.stringify(jobs)],
    );
  },
  async publish(ctx, m) {
    await ctx.pool.query(
      `SELECT graphile_worker.add_job('deliver', $1::json, queue_name => $2, max_attempts => 25)`,
      [JSON.stringify(toJob(m)), m.partition],
    );
  },
});

/** graphile-worker with its fastest settings: a local queue and batched completion. */
export const graphile = {
  ...graphileDefault,
  name: 'graphile-worker fastest',
  startWorkers: (ctx, o) =>
    graphileDefault.startWorkers(ctx, { ...o, env: { ...o.env, GRAPHILE_FASTEST: '1' } }),
};

/**
 * pg-boss 10: a `singleton` queue, singletonKey = the partition. pg-boss orders a fetch by
 * (created_on, id) with random uuid ids, and created_on is the transaction's now(), so a
 * backlog is sent in rounds of at most one message per partition per transaction; one big
 * insert would shuffle each partition's order before any worker runs.
 */
export const pgboss = runnerSystem('pg-boss', 'pgboss-runner.mjs', {
  async setup(ctx) {
    const { default: PgBoss } = await import('pg-boss');
    const boss = new PgBoss({
      connectionString: ctx.db.url,
      max: 2,
      supervise: false,
      schedule: false,
    });
    boss.on('error', () => undefined);
    await boss.start();
    await boss.createQueue('deliver', { name: 'deliver', policy: 'singleton', retryLimit: 100 });
    ctx.boss = boss;
    const close = ctx.pool.end.bind(ctx.pool);
    ctx.pool.end = async () => {
      await boss.stop({ graceful: false, wait: true });
      await close();
    };
  },
  async enqueue(ctx, messages) {
    const rounds = new Map();
    for (const m of messages) {
      const round = m.sequence;
      if (!rounds.has(round)) rounds.set(round, []);
      rounds.get(round).push(m);
    }
    for (const round of [...rounds.keys()].sort((a, b) => a - b)) {
      await ctx.boss.insert(
        rounds.get(round).map((m) => ({
          name: 'deliver',
          data: toJob(m),
          singletonKey: m.partition,
          retryLimit: 100,
          retryDelay: 1,
        })),
      );
    }
  },
  async publish(ctx, m) {
    await ctx.boss.send('deliver', toJob(m), {
      singletonKey: m.partition,
      retryLimit: 100,
      retryDelay: 1,
    });
  },
});

/** Forks raw-runner.mjs with `workers` × `concurrency` lanes and waits until it is ready. */
async function startRawRunner(ctx, { workers, concurrency }, env = {}) {
  ctx.concurrency = workers * concurrency;
  const proc = forkModule(join(ROOT, 'bench/systems/raw-runner.mjs'), {
    CONCURRENCY: String(ctx.concurrency),
    ...env,
  });
  await proc.next((m) => m.ready);
  ctx.proc = proc;
  return { ready: true, pids: [proc.child.pid], stop: () => proc.stop(), errors: () => '' };
}

/** No queue: the messages go straight from memory to the socket. */
export const raw = {
  name: 'raw HTTP',
  async prepare(db, receiverUrl) {
    return { receiverUrl, client: makeClient(64) };
  },
  /** Hands the messages to the running raw process, which starts POSTing at once. */
  async enqueue(ctx, messages) {
    ctx.done = ctx.proc.request({
      cmd: 'go',
      messages: messages.map(toJob),
      concurrency: ctx.concurrency,
      url: ctx.receiverUrl,
    });
  },
  startWorkers: (ctx, o) => startRawRunner(ctx, o),
  async publish(ctx, m) {
    for (
      let attempt = 1;
      !(await postWebhook(ctx.client, ctx.receiverUrl, { ...toJob(m), attempt }));
      attempt++
    );
  },
  async close() {},
};

/**
 * The floor of any queue that keeps DESIGN's promise and records: the raw loop in ordered lanes,
 * committing after each 2xx the records DESIGN §4 asks for (raw-runner.mjs) on our schema,
 * before that partition's next POST. What ours costs beyond it is the queue's own (claims,
 * leases, fences); what it costs beyond raw HTTP is the records'. With several webhooks, each
 * (message, webhook) is POSTed to that webhook's URL and recorded on its line.
 */
export const rawRecorded = {
  name: 'raw + durable record',
  async prepare(db, receiverUrl, { webhooks = 1 } = {}) {
    const ctx = await ours.prepare(db, receiverUrl, { webhooks });
    const { rows } = await ctx.pool.query(`SELECT id FROM webhooks ORDER BY id`);
    return { ...ctx, receiverUrl, webhookIds: rows.map((r) => r.id) };
  },
  /** The backlog goes in as ours does (deliveries and lines by the trigger), then to the lanes. */
  async enqueue(ctx, messages) {
    await ours.enqueue(ctx, messages);
    const n = ctx.webhookIds.length;
    ctx.done = ctx.proc.request({
      cmd: 'go',
      messages: messages.flatMap((m) =>
        ctx.webhookIds.map((webhookId, i) => ({
          ...toJob(m),
          webhookId,
          url: webhookUrl(ctx.receiverUrl, i, n),
        })),
      ),
      concurrency: ctx.concurrency,
    });
  },
  startWorkers: (ctx, o) => startRawRunner(ctx, o, { RECORD_DATABASE_URL: ctx.db.url }),
  close: ours.close,
};
