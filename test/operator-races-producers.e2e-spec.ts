import type request from 'supertest';
import type { TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, insertMessage } from './helpers/factories.js';
import { raceBench } from './helpers/race-bench.js';
import { ClaimLoop } from '../src/delivery/claim-loop.js';

/**
 * Producers' open transactions racing with the workers and the API: a held line holds up only
 * itself, a record never deadlocks with a producer, and a publish that deadlocks answers 503.
 */
describe('operator actions and open transactions race with delivery', () => {
  const bench = raceBench();
  const {
    worker,
    gatedReceiver,
    sequences,
    publish,
    connection,
    holdLine,
    pidOf,
    waitersOn,
    untilWaiting,
    delivery,
    setup,
  } = bench;
  let db: TestDatabase;
  let http: ReturnType<typeof request>;
  beforeAll(() => {
    ({ db, http } = bench);
  });

  it('4. a producer holding one line does not hold up the worker’s other lines', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic } = await setup(receiver.url);
    const a1 = hold('a:1');
    await publish(topic.id, 'a', 1);
    await worker();
    await a1.arrived();
    const producer = await connection();
    await producer.query('BEGIN');
    await insertMessage(producer, topic.id, 'a');
    a1.release();
    await untilWaiting(await pidOf(producer), 'pgwq_record_attempts');
    // While the producer's transaction stays open, line b flows.
    await publish(topic.id, 'b', 5);
    await eventually(() => sequences(receiver, 'b').length === 5, {
      timeoutMs: 3000,
      what: 'b delivered while a is held',
    });
    expect(await waitersOn(await pidOf(producer), 'pgwq_record_attempts')).toBe(1);
    await producer.query('COMMIT');
    await eventually(() => sequences(receiver, 'a').join() === '1,2', { what: 'a goes on' });
  });

  it('5. a record of several lines never deadlocks with a producer locking them in another order', async () => {
    const { receiver, hold } = await gatedReceiver();
    const { topic, hook } = await setup(receiver.url);
    const held = ['a:1', 'b:1', 'c:1'].map(hold);
    for (const key of ['a', 'b', 'c']) await publish(topic.id, key, 1);
    const recorder = (await worker()).get(ClaimLoop)['recording']['recorder'] as unknown as {
      waiting: unknown[];
    };
    for (const h of held) await h.arrived();
    // c's record waits on a lock, so a's and b's results queue up and go together.
    const c = await holdLine(hook.id, 'c');
    held[2].release();
    await untilWaiting(c.pid, 'pgwq_record_attempts');
    const producer = await connection();
    await producer.query('BEGIN');
    await producer.query(`SET LOCAL deadlock_timeout = '100ms'`);
    await insertMessage(producer, topic.id, 'b');
    held[0].release();
    held[1].release();
    // Both results handed to the recorder: queued behind c's record, or (not waiting for c)
    // a's recorded already.
    await eventually(
      async () =>
        recorder.waiting.length === 2 || (await delivery(hook.id, 'a', 1)).status === 'delivered',
      { what: 'the results of a and b' },
    );
    await c.release();
    await untilWaiting(await pidOf(producer), 'pgwq_record_attempts');
    // The producer's second partition, in the opposite order: no deadlock, it commits.
    await expect(insertMessage(producer, topic.id, 'a')).resolves.toBeDefined();
    await producer.query('COMMIT');
    await eventually(() => ['a', 'b'].every((key) => sequences(receiver, key).join() === '1,2'), {
      what: 'a and b go on',
    });
  });

  it('8. a publish that deadlocks every time answers 503 with a retry message', async () => {
    const topic = await createTopic(db.pool);
    await db.pool.query(`
      CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
      END $$;
      CREATE TRIGGER messages_deadlock BEFORE INSERT ON messages
        FOR EACH ROW WHEN (NEW.partition_key = 'deadlock') EXECUTE FUNCTION test_deadlock();`);
    try {
      const res = await http
        .post(`/topics/${topic.name}/messages`)
        .send({ partition_key: 'deadlock', payload: {} });
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/deadlock.*try again/);
    } finally {
      await db.pool.query(
        `DROP TRIGGER messages_deadlock ON messages; DROP FUNCTION test_deadlock();`,
      );
    }
  });
});
