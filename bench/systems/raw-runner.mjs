// The raw HTTP ceiling: one Node process POSTing the same bodies, with the same client, headers
// and concurrency, and no queue at all (and no ordering: any free slot takes the next message).
// With concurrency 1 it is the plain sequential POST loop. A non-2xx is retried at once.
//
// With RECORD_DATABASE_URL (the "raw + durable record" floor, systems/index.mjs), every message
// carries its webhook (webhookId, url); each lane owns its lines (webhook, partition) and keeps
// their order, and after each 2xx it commits, in one statement, the records DESIGN §4 asks of
// every delivered message before that line's next POST: the line's head moved on, the delivery
// marked delivered, the attempt's row; and it reads the next head's payload, as a worker must. No claim, lease, fence or retry bookkeeping: what is left is
// the cost of the records themselves.
import pg from 'pg';
import { RECORD_DELIVERED } from '../lib/durable-record.mjs';
import { makeClient, postWebhook } from '../lib/sender.mjs';

const recordUrl = process.env.RECORD_DATABASE_URL;
const connections = Number(process.env.CONCURRENCY ?? 1);
const pool = recordUrl ? new pg.Pool({ connectionString: recordUrl, max: connections }) : null;
if (pool) {
  // Every connection open before the run, as the queues' are.
  const clients = await Promise.all(Array.from({ length: connections }, () => pool.connect()));
  clients.forEach((c) => c.release());
}

process.on('message', async (msg) => {
  if (msg.cmd !== 'go') return;
  const { messages, concurrency } = msg;
  const client = makeClient(concurrency);
  const deliver = async (m) => {
    let attempt = 1;
    const startedAt = new Date();
    for (; !(await postWebhook(client, m.url ?? msg.url, { ...m, attempt })); attempt++);
    if (!pool) return;
    await pool.query({
      name: 'record_delivered',
      text: RECORD_DELIVERED,
      values: [m.webhookId, m.partition, m.sequence, attempt, startedAt, Date.now() - startedAt],
    });
  };
  let lanes;
  if (pool) {
    // Lane k takes the lines of the k-th share, each in its order.
    const owner = new Map();
    lanes = Array.from({ length: concurrency }, () => []);
    for (const m of messages) {
      const line = `${m.webhookId}|${m.partition}`;
      if (!owner.has(line)) owner.set(line, owner.size % concurrency);
      lanes[owner.get(line)].push(m);
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
