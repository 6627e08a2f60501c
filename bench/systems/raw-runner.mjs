// The raw HTTP ceiling: one Node process POSTing the same bodies, with the same client, headers
// and concurrency, and no queue at all (and no ordering: any free slot takes the next message).
// With concurrency 1 it is the plain sequential POST loop. A non-2xx is retried at once.
//
// With RECORD_DATABASE_URL (the "raw + durable record" floor, systems/index.mjs), each lane owns
// its partitions and keeps their order, and after each 2xx it commits, in one statement, the
// records DESIGN §4 asks of every delivered message before that partition's next POST: the
// line's head moved on, the delivery marked delivered, the attempt's row; and it reads the next
// head's payload, as a worker must. No claim, lease, fence or retry bookkeeping: what is left is
// the cost of the records themselves.
import pg from 'pg';
import { makeClient, postWebhook } from '../lib/sender.mjs';

const RECORD_DELIVERED = `
WITH line AS (
  UPDATE delivery_lines
  SET head_sequence = $3 + 1,
      next_attempt_at = CASE WHEN $3 < tail_sequence THEN clock_timestamp() + interval '30 s' END,
      head_created_at = CASE WHEN $3 < tail_sequence THEN now() END
  WHERE webhook_id = $1 AND partition_key = $2
  RETURNING webhook_id
), delivery AS (
  UPDATE deliveries
  SET status = 'delivered', attempts = $4, last_status_code = 200, delivered_at = now(),
      next_attempt_at = NULL
  WHERE webhook_id = $1 AND partition_key = $2 AND sequence = $3
  RETURNING id
), attempt AS (
  INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code)
  SELECT id, $4, $5, $6, 200 FROM delivery
)
SELECT m.payload::text AS body
FROM deliveries d JOIN messages m ON m.id = d.message_id
WHERE d.webhook_id = $1 AND d.partition_key = $2 AND d.sequence = $3 + 1`;

const recordUrl = process.env.RECORD_DATABASE_URL;
const webhookId = Number(process.env.RECORD_WEBHOOK_ID);
const connections = Number(process.env.CONCURRENCY ?? 1);
const pool = recordUrl ? new pg.Pool({ connectionString: recordUrl, max: connections }) : null;
if (pool) {
  // Every connection open before the run, as the queues' are.
  const clients = await Promise.all(Array.from({ length: connections }, () => pool.connect()));
  clients.forEach((c) => c.release());
}

process.on('message', async (msg) => {
  if (msg.cmd !== 'go') return;
  const { messages, concurrency, url } = msg;
  const client = makeClient(concurrency);
  const deliver = async (m) => {
    let attempt = 1;
    const startedAt = new Date();
    for (; !(await postWebhook(client, url, { ...m, attempt })); attempt++);
    if (!pool) return;
    await pool.query({
      name: 'record_delivered',
      text: RECORD_DELIVERED,
      values: [webhookId, m.partition, m.sequence, attempt, startedAt, Date.now() - startedAt],
    });
  };
  let lanes;
  if (pool) {
    // Lane k takes the partitions of the k-th share, each in its order.
    const owner = new Map();
    lanes = Array.from({ length: concurrency }, () => []);
    for (const m of messages) {
      if (!owner.has(m.partition)) owner.set(m.partition, owner.size % concurrency);
      lanes[owner.get(m.partition)].push(m);
    }
    lanes = lanes.map((own) => async () => {
      for (const m of own) await deliver(m);
    });
  } else {
    let next = 0;
    lanes = Array.from({ length: concurrency }, () => async () => {
      while (next < messages.length) await deliver(messages[next++]);
    });
  }
  await Promise.all(lanes.map((lane) => lane()));
  process.send?.({ id: msg.id, done: true });
});
process.send?.({ ready: true });
process.on('disconnect', async () => {
  await pool?.end();
  process.exit(0);
});
