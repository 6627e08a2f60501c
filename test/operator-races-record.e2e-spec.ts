import type request from 'supertest';
import type { TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { raceBench } from './helpers/race-bench.js';
import { startInProcessWorker } from './helpers/worker.js';

/**
 * Suspected faults of the record and the lease, each forced: a run of failures, a kept line let go,
 * a replayed head in flight, a failed head rewound, a line given back at shutdown.
 */
describe('operator actions and open transactions race with delivery', () => {
  const bench = raceBench();
  const { worker, gatedReceiver, publish, holdLine, untilWaiting, lineRow, delivery, setup } =
    bench;
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeAll(() => {
    ({ db, http } = bench);
  });

  it('suspected: a success ends a run of failures that began after its claim', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-partition-key'] === 'bad' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const ok = hold('ok:1');
    await publish(topic.id, 'ok', 1);
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await ok.arrived(); // claimed while the webhook had no failures
    await publish(topic.id, 'bad', 1);
    await eventually(async () => {
      const { rows } = await db.pool.query(`SELECT failing_since FROM webhooks WHERE id = $1`, [
        hook.id,
      ]);
      return rows[0].failing_since !== null;
    });
    ok.release();
    await eventually(
      async () => {
        const { rows } = await db.pool.query(`SELECT failing_since FROM webhooks WHERE id = $1`, [
          hook.id,
        ]);
        return rows[0].failing_since === null;
      },
      { what: 'the success to end the run of failures' },
    );
  });

  it('suspected: a kept line let go on a paused webhook is due at once, not a lease later', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const first = hold('t:1');
    await publish(topic.id, 't', 3);
    await worker({ DELIVERY_TIMEOUT_MS: '10000' });
    await first.arrived();
    await http.patch(`/webhooks/${hook.id}`).send({ status: 'paused' }).expect(200);
    first.release();
    await eventually(async () => (await delivery(hook.id, 't', 1)).status === 'delivered');
    expect(await lineRow(hook.id, 't')).toMatchObject({
      head: 2,
      lease_token: null,
      due_now: true,
    });
  });

  it('suspected: a replayed head in flight starts again with a fresh retry budget', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-sequence'] === '2' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const second = hold('u:2');
    await publish(topic.id, 'u', 3);
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await second.arrived();
    await http
      .post(`/webhooks/${hook.id}/replay`)
      .send({ partition_key: 'u', from_sequence: 1 })
      .expect(200);
    second.release({ status: 500 });
    // The rewound line sends 1 again, then 2: its first attempt of a new budget.
    const attempts = async () =>
      (
        await db.pool.query<{ attempt: number }>(
          `SELECT attempt FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id`,
          [(await delivery(hook.id, 'u', 2)).id],
        )
      ).rows.map((row) => row.attempt);
    await eventually(async () => (await attempts()).length === 2, { what: '2 tried again' });
    expect(await attempts()).toEqual([1, 1]);
  });

  it('suspected: a failed head whose line has a later rewind waits out its backoff', async () => {
    const { receiver, hold } = await gatedReceiver((a) =>
      a.headers['webhook-sequence'] === '1' ? { status: 500 } : { status: 200 },
    );
    const { topic, hook } = await setup(receiver.url);
    const first = hold('v:1');
    await publish(topic.id, 'v', 3);
    await db.pool.query(
      `UPDATE deliveries SET status = 'dead', dead_at = now() WHERE webhook_id = $1 AND sequence = 3`,
      [hook.id],
    );
    await worker({ BACKOFF_FACTOR: '60', BACKOFF_MAX_SECONDS: '600' });
    await first.arrived();
    const three = await delivery(hook.id, 'v', 3);
    await http
      .post('/dead-letter/redrive')
      .send({ delivery_ids: [three.id] })
      .expect(200);
    first.release({ status: 500 });
    await eventually(async () => (await delivery(hook.id, 'v', 1)).attempts === 1);
    expect(await lineRow(hook.id, 'v')).toMatchObject({
      head: 1,
      lease_token: null,
      due_later: true,
    });
  });

  it('suspected: shutdown gives back a line its last record kept', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const first = hold('w:1');
    await publish(topic.id, 'w', 3);
    const w = await startInProcessWorker(db.url);
    await first.arrived();
    const line = await holdLine(hook.id, 'w');
    first.release();
    await untilWaiting(line.pid, 'pgwq_record_attempts');
    const closed = w.close();
    // Shutdown waits for the request in flight, gives up, and releases the line (fenced on
    // head 1), which waits behind the record.
    await untilWaiting(line.pid, '', 2); // the record and the release
    await line.release();
    await closed;
    expect(await lineRow(hook.id, 'w')).toMatchObject({
      head: 2,
      lease_token: null,
      due_now: true,
    });
  });
});
