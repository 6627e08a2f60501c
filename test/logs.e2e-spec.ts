import { spawn } from 'node:child_process';
import { createTestDatabase, SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { createTopic, createWebhook, insertMessage } from './helpers/factories.js';
import { freePort } from './helpers/prometheus.js';
import { Receiver } from './helpers/receiver.js';
import { built, childCwd } from './helpers/scratch.js';
import { WorkerProcess } from './helpers/worker.js';

type LogLine = Record<string, unknown>;

/** Every line of `output` as JSON; fails on the first line that is not one JSON object. */
function jsonLines(output: string): LogLine[] {
  return output
    .trim()
    .split('\n')
    .map((line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
      expect(parsed).toEqual(expect.any(Object));
      return parsed as LogLine;
    });
}

/** `node dist/main.js` with this environment; its stdout and stderr go to `output`. */
function startApi(env: Record<string, string>) {
  const child = spawn(process.execPath, [built('main.js')], {
    cwd: childCwd(),
    env: { PATH: process.env.PATH, ...SCHEMA_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const api = { output: '', exited: new Promise((done) => child.on('exit', done)), child };
  child.stdout.on('data', (d: Buffer) => (api.output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (api.output += d.toString()));
  return api;
}

describe('logs', () => {
  let db: TestDatabase;
  let receiver: Receiver;
  beforeAll(async () => {
    db = await createTestDatabase();
    // The first attempt of each message fails, the second succeeds.
    receiver = await Receiver.start((arrival) =>
      arrival.headers['webhook-attempt'] === '1' ? { status: 500 } : { status: 200 },
    );
  });
  afterAll(async () => {
    await receiver?.close();
    await db?.drop();
  });

  it('LOG_FORMAT=json: the worker prints one JSON object per line; delivery lines carry their ids', async () => {
    const topic = await createTopic(db.pool);
    const webhook = await createWebhook(db.pool, topic.id, receiver.url);
    const message = await insertMessage(db.pool, topic.id, 'user-42');
    const worker = WorkerProcess.spawn(db.url, { LOG_FORMAT: 'json', LOG_LEVEL: 'debug' });
    try {
      await eventually(() => /"level":"debug".*HTTP 200/.test(worker.output), {
        timeoutMs: 45_000,
        what: 'the logged delivery',
      });
      worker.kill('SIGTERM');
      expect((await worker.exited).code).toBe(0);
    } finally {
      await worker.stop();
    }
    const lines = jsonLines(worker.output);
    expect(lines.every((line) => line.role === 'worker')).toBe(true);
    expect(lines.map((line) => line.level)).toEqual(expect.arrayContaining(['log', 'debug']));

    const { rows } = await db.pool.query<{ id: string }>(
      'SELECT id FROM deliveries WHERE message_id = $1',
      [message.id],
    );
    const ids = {
      webhook_id: webhook.id,
      partition_key: 'user-42',
      sequence: 1,
      delivery_id: Number(rows[0].id),
      message_id: message.id,
    };
    const deliveryLines = lines.filter((line) => 'delivery_id' in line);
    expect(deliveryLines).toEqual([
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(/^HTTP 500 in \d+ ms; retry in/),
        ...ids,
        attempt: 1,
      }),
      expect.objectContaining({
        level: 'debug',
        message: expect.stringMatching(/^HTTP 200 in \d+ ms$/),
        ...ids,
        attempt: 2,
      }),
    ]);
  }, 180_000);

  it('LOG_FORMAT=json for the API too, and LOG_LEVEL=warn leaves the log level out', async () => {
    const port = await freePort();
    const api = startApi({
      DATABASE_URL: db.url,
      PORT: String(port),
      API_LISTEN_ADDRESS: '127.0.0.1', // no API_KEYS: it starts only on loopback
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'warn',
    });
    try {
      await eventually(
        async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.ok,
        { timeoutMs: 45_000, what: 'the API to answer' },
      );
      api.child.kill('SIGTERM');
      await api.exited;
    } finally {
      api.child.kill('SIGKILL');
    }
    const lines = jsonLines(api.output);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((line) => line.role === 'api')).toBe(true);
    expect(lines.every((line) => ['warn', 'error', 'fatal'].includes(line.level as string))).toBe(
      true,
    );
    // API_KEYS is not set: its warning is there, the "API listening" line (level log) is not.
    expect(lines.some((line) => /API_KEYS is not set/.test(line.message as string))).toBe(true);
  }, 180_000);

  it('a start-up error is one JSON line with LOG_FORMAT=json, and text by default', async () => {
    const bad = WorkerProcess.spawn(db.url, { LOG_FORMAT: 'json', MAX_RETRIES: '-1' });
    expect((await bad.exited).code).toBe(1);
    expect(jsonLines(bad.output)).toEqual([
      expect.objectContaining({
        level: 'fatal',
        role: 'worker',
        message: expect.stringMatching(/^cannot start: invalid configuration: MAX_RETRIES/),
      }),
    ]);

    const text = WorkerProcess.spawn(db.url);
    try {
      await eventually(() => /delivering: concurrency/.test(text.output), {
        timeoutMs: 45_000,
        what: 'the worker to start',
      });
    } finally {
      await text.stop();
    }
    const first = text.output.split('\n')[0];
    expect(first).toContain('[pgwq-worker]');
    expect(() => JSON.parse(first)).toThrow();
  }, 180_000);
});
