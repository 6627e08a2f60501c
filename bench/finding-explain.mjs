// The search lookups (DESIGN §12) at a million deliveries: fills a scratch database through the
// publish trigger (10 topics with 2 webhooks each, 500,000 messages over 5,000 partition keys
// per topic, so 1,000,000 deliveries: 94 % delivered, 5 % pending, 1 % dead), then prints
// EXPLAIN (ANALYZE, BUFFERS) of each lookup as the API sends it, and fails if a plan reads
// deliveries or messages with a sequential scan.
//
//   npm run build && node bench/finding-explain.mjs > bench/results/finding-explain.txt
//
// DATABASE_URL: a server it may create and drop a database on; unset, an embedded one.
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createDatabase, ROOT, serverVersion, startDatabaseServer } from './lib/util.mjs';

const TOPICS = 10;
const MESSAGES_PER_TOPIC = 50_000;
const KEYS_PER_TOPIC = 5_000;

const server = await startDatabaseServer();
const db = await createDatabase(server.url, 'finding');
const pool = new pg.Pool({ connectionString: db.url, max: 2 });
try {
  const { runMigrations } = await import(join(ROOT, 'dist/database/migrate.js'));
  await runMigrations(db.url);
  const started = Date.now();
  for (let t = 0; t < TOPICS; t++) {
    const { rows } = await pool.query(`INSERT INTO topics (name) VALUES ($1) RETURNING id`, [
      `topic-${t}`,
    ]);
    for (let w = 0; w < 2; w++) {
      await pool.query(`INSERT INTO webhooks (topic_id, url, secret) VALUES ($1, $2, $3)`, [
        rows[0].id,
        `https://example.com/${t}/${w}`,
        'whsec_' + Buffer.alloc(32, 7).toString('base64'),
      ]);
    }
    for (let from = 0; from < MESSAGES_PER_TOPIC; from += 10_000) {
      await pool.query(
        `INSERT INTO messages (topic_id, partition_key, payload, idempotency_key)
         SELECT $1::int, 'customer-' || (n % $4), jsonb_build_object('n', n), 'order-' || $1::int || '-' || n
         FROM generate_series($2::int, $3::int) AS n`,
        [rows[0].id, from, from + 9_999, KEYS_PER_TOPIC],
      );
    }
  }
  await pool.query(`
    UPDATE deliveries SET
      status = CASE WHEN message_id % 100 = 0 THEN 'dead' WHEN message_id % 100 < 6 THEN 'pending' ELSE 'delivered' END,
      attempts = 1,
      delivered_at = CASE WHEN message_id % 100 >= 6 THEN now() END,
      dead_at = CASE WHEN message_id % 100 = 0 THEN now() END,
      last_error = CASE WHEN message_id % 100 = 0 THEN 'HTTP 500' END`);
  await pool.query(`INSERT INTO audit_log (actor, action, target, parameters)
    SELECT 'key-1', 'webhook.update', 'webhook:' || (n % 1000 + 1), '{"status": "paused"}'
    FROM generate_series(1, 100000) AS n`);
  await pool.query('VACUUM ANALYZE');
  const filledMs = Date.now() - started;

  const { rows: counts } = await pool.query(
    `SELECT (SELECT count(*) FROM deliveries) AS deliveries, (SELECT count(*) FROM messages) AS messages`,
  );
  // Lookups on the middle of the data: webhook 11 (topic 6), a partition of it, a message.
  const webhookId = 11;
  const { rows: hook } = await pool.query(
    `SELECT w.topic_id, t.name FROM webhooks w JOIN topics t ON t.id = w.topic_id WHERE w.id = $1`,
    [webhookId],
  );
  const [{ topic_id: topicId, name: topicName }] = hook;
  const { rows: some } = await pool.query(
    `SELECT id, message_id, sequence FROM deliveries
     WHERE webhook_id = $1 AND partition_key = 'customer-42' ORDER BY sequence LIMIT 1 OFFSET 4`,
    [webhookId],
  );
  const [cursor] = some;
  // Each lookup is the statement the API's own service sends (TypeORM's query log), EXPLAINed
  // with its parameters: what is measured cannot drift from what runs.
  const { DataSource } = await import('typeorm');
  const { dataSourceOptions } = await import(join(ROOT, 'dist/database/data-source-options.js'));
  const entities = await import(join(ROOT, 'dist/database/entities/index.js'));
  const sent = [];
  const ignore = () => undefined;
  const orm = new DataSource({
    ...dataSourceOptions(db.url),
    logging: ['query'],
    logger: {
      logQuery: (query, parameters) => sent.push({ query, parameters: parameters ?? [] }),
      logQueryError: ignore,
      logQuerySlow: ignore,
      logSchemaBuild: ignore,
      logMigration: ignore,
      log: ignore,
    },
  });
  await orm.initialize();
  const service = async (path, name, ...args) =>
    new (await import(join(ROOT, path)))[name](...args);
  const deliveries = await service(
    'dist/deliveries/deliveries.service.js',
    'DeliveriesService',
    orm.getRepository(entities.Delivery),
    orm.getRepository(entities.DeliveryAttempt),
    orm.getRepository(entities.Message),
    { getById: async () => undefined }, // the webhook exists
  );
  const messages = await service('dist/messages/message-search.service.js', 'MessageSearch', orm);
  const audit = await service(
    'dist/audit/audit-log.service.js',
    'AuditLog',
    orm.getRepository(entities.AuditEntry),
  );
  const page = { limit: 100, after: 0, order: 'asc' };
  const deadLetters = await service(
    'dist/dead-letter/dead-letter.service.js',
    'DeadLetterService',
    orm.getRepository(entities.Delivery),
  );
  /**
   * The last statement `call` sent but the page's event types (withEventTypes, by the messages'
   * primary key): the lookup (a topic's id by name may come before it).
   */
  const statementOf = async (call) => {
    sent.length = 0;
    await call();
    return sent.filter(({ query }) => !query.includes('event_type FROM messages WHERE id')).at(-1);
  };
  const lookups = [
    [
      "a webhook's deliveries, newest first (GET /webhooks/11/deliveries?order=desc)",
      () => deliveries.listByWebhook(webhookId, { ...page, order: 'desc' }),
    ],
    [
      'status=dead, newest first',
      () => deliveries.listByWebhook(webhookId, { ...page, order: 'desc', status: 'dead' }),
    ],
    [
      'status=pending, oldest first',
      () => deliveries.listByWebhook(webhookId, { ...page, status: 'pending' }),
    ],
    [
      'status=delivered, newest first, older than a cursor',
      () =>
        deliveries.listByWebhook(webhookId, {
          ...page,
          order: 'desc',
          status: 'delivered',
          after: cursor.id,
        }),
    ],
    [
      'partition_key=customer-42 (its line, in sequence order)',
      () => deliveries.listByWebhook(webhookId, { ...page, partition_key: 'customer-42' }),
    ],
    [
      'partition_key=customer-42&status=dead&order=desc&after=<a delivery of the line>',
      () =>
        deliveries.listByWebhook(webhookId, {
          ...page,
          order: 'desc',
          status: 'dead',
          partition_key: 'customer-42',
          after: cursor.id,
        }),
    ],
    [
      "a topic's messages, newest first (GET /messages?topic=…&order=desc)",
      () => messages.list({ ...page, order: 'desc', topic: topicName }),
    ],
    [
      'messages by partition_key, after a message of the partition',
      () =>
        messages.list({
          ...page,
          topic_id: topicId,
          partition_key: 'customer-42',
          after: cursor.message_id,
        }),
    ],
    [
      'messages by idempotency_key',
      () => messages.list({ ...page, topic_id: topicId, idempotency_key: `order-${topicId}-4242` }),
    ],
    [
      "a message's deliveries (GET /messages/{id}/deliveries)",
      () => deliveries.listByMessage(cursor.message_id, page),
    ],
    ['one delivery (GET /deliveries/{id})', () => deliveries.getById(cursor.id)],
    ['dead letters, oldest first (GET /dead-letter)', () => deadLetters.list(page)],
    [
      "a topic's dead letters, newest first (GET /dead-letter?topic_id=…&order=desc)",
      () => deadLetters.list({ ...page, order: 'desc', topic_id: topicId }),
    ],
    [
      "a webhook's dead letters (GET /dead-letter?webhook_id=11)",
      () => deadLetters.list({ ...page, webhook_id: webhookId }),
    ],
    [
      "a webhook's dead letters counted (GET /dead-letter/count?webhook_id=11)",
      () => deadLetters.count({ webhook_id: webhookId }),
    ],
    [
      'the audit log of a webhook, newest first (GET /audit-log?target=webhook:11)',
      () => audit.list({ ...page, order: 'desc', target: `webhook:${webhookId}` }),
    ],
  ];
  const statements = [];
  for (const [what, call] of lookups) statements.push([what, await statementOf(call)]);
  await orm.destroy();
  const { WEBHOOK_HEALTH } = await import(join(ROOT, 'dist/webhook-health/webhook-health.sql.js'));
  const { QUEUE_STATS } = await import(join(ROOT, 'dist/metrics/queue-stats.sql.js'));
  statements.push([
    "the API's queue gauges, every webhook (GET /metrics; 20 webhooks, 100,000 lines)",
    { query: QUEUE_STATS, parameters: [] },
  ]);
  statements.push([
    "a topic's webhook health (GET /webhook-health?topic_ids=…)",
    { query: WEBHOOK_HEALTH, parameters: [[topicId], 0, 1000] },
  ]);

  console.log(
    `# node bench/finding-explain.mjs (PostgreSQL ${await serverVersion(db.url)}${server.embedded ? ', embedded' : ''})`,
  );
  console.log(
    `# ${Number(counts[0].deliveries).toLocaleString('en')} deliveries, ` +
      `${Number(counts[0].messages).toLocaleString('en')} messages, 100,000 audit entries over 1,000 targets ` +
      `(filled in ${Math.round(filledMs / 1000)} s); webhook ${webhookId}, topic ${topicId}`,
  );
  console.log(
    `# ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the start of the EXPLAINs`,
  );
  const seqScans = [];
  for (const [what, { query, parameters }] of statements) {
    const { rows } = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${query}`, parameters);
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    console.log(`\n## ${what}\n${plan}`);
    if (/Seq Scan on (deliveries|messages|audit_log)/.test(plan)) seqScans.push(what);
  }
  if (seqScans.length > 0) {
    console.error(`sequential scans in: ${seqScans.join('; ')}`);
    process.exitCode = 1;
  }
} finally {
  await pool.end();
  await db.drop();
  await server.stop();
}
