import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { join } from 'node:path';
import { createTestDatabase, databaseUrlFor, SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { eventually } from './helpers/eventually.js';
import { built, childCwd, scratchDir } from './helpers/scratch.js';

/**
 * Starts a built entry point with exactly `env` (and PATH) in `cwd` (default: a folder without
 * .env) and collects its output. A process still running after 20 s is killed: a start-up error
 * must come before that.
 */
function start(entry: string, env: Record<string, string>, cwd = childCwd()) {
  const child = spawn(process.execPath, [built(entry)], {
    // Loopback: without API_KEYS the API refuses any other address (fail closed). PORT 0:
    // never the default 8000, which npm start may hold while the tests run.
    env: {
      PATH: process.env.PATH ?? '',
      ...SCHEMA_ENV,
      API_LISTEN_ADDRESS: '127.0.0.1',
      PORT: '0',
      ...env,
    },
    cwd,
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    }),
  );
  return { child, out, exited };
}

async function run(entry: string, env: Record<string, string>, cwd?: string) {
  const { out, exited } = start(entry, env, cwd);
  const code = await exited;
  return { code, stderr: out.stderr, stdout: out.stdout };
}

/** Exit code 1 and a single line on stderr (no stack trace) that says `what`; returns it. */
async function expectOneLine(
  result: Promise<{ code: number | null; stderr: string }>,
  what: string,
): Promise<string> {
  const { code, stderr } = await result;
  const lines = stderr.trim().split('\n');
  expect({ code, lines }).toEqual({ code: 1, lines: [expect.stringContaining(what)] });
  expect(lines[0]).toMatch(/cannot start/);
  return lines[0];
}

/** The API without keys, on loopback only (it refuses to serve an open API on every interface). */
const LOOPBACK = { API_LISTEN_ADDRESS: '127.0.0.1' };

describe('start-up', () => {
  let migrated: TestDatabase;
  let empty: TestDatabase;
  beforeAll(async () => {
    [migrated, empty] = await Promise.all([
      createTestDatabase(),
      createTestDatabase({ empty: true }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([migrated?.drop(), empty?.drop()]);
  });

  describe('with bad configuration', () => {
    it.each([
      [
        'main.js',
        { MAX_RETRIES: '-1', DATABASE_URL: 'postgres://x@127.0.0.1:1/db' },
        'MAX_RETRIES must not be less than 1',
      ],
      [
        'main.js',
        { PORT: 'abc', DATABASE_URL: 'postgres://x@127.0.0.1:1/db' },
        'PORT must be an integer',
      ],
      ['main.js', { DATABASE_URL: 'postgres//broken' }, 'DATABASE_URL'],
      ['worker.js', { WORKER_CONCURRENCY: 'lots' }, 'WORKER_CONCURRENCY must be an integer'],
      ['worker.js', { METRICS_PORT: '99999' }, 'METRICS_PORT must not be greater than 65535'],
      ['worker.js', { LOG_LEVEL: 'info' }, 'LOG_LEVEL must be one of verbose, debug, log'],
      ['main.js', { LOG_FORMAT: 'xml' }, 'LOG_FORMAT must be one of text, json'],
      ['main.js', {}, 'DATABASE_URL is not set'],
    ])('%s with %j stops at once with one line: %s', async (entry, env, what) => {
      await expectOneLine(run(entry, env), what);
    });

    it('reads .env from its working directory (the tests run theirs where there is none)', async () => {
      const dir = scratchDir('dotenv-');
      writeFileSync(join(dir, '.env'), 'MAX_RETRIES=-1\n');
      await expectOneLine(
        run('main.js', { DATABASE_URL: migrated.url }, dir),
        'MAX_RETRIES must not be less than 1',
      );
    });
  });

  describe('with a database it cannot use', () => {
    it.each(['main.js', 'worker.js'])(
      '%s refuses one without the migrations and says to run them',
      async (entry) => {
        const line = await expectOneLine(
          run(entry, { ...LOOPBACK, DATABASE_URL: empty.url }),
          'has no pg-webhook-queue tables',
        );
        expect(line).toMatch(/run the migrations first: npm run migration:run/);
      },
    );

    it('stops at once, without retrying, on a database that does not exist', async () => {
      const url = databaseUrlFor(process.env.PGWQ_TEST_ADMIN_URL!, 'pgwq_no_such_database');
      await expectOneLine(
        run('main.js', { ...LOOPBACK, DATABASE_URL: url }),
        'database "pgwq_no_such_database" does not exist',
      );
    });
  });

  describe('the port', () => {
    let busy: Server;
    afterAll(() => busy?.close());

    it('in use is one line: "port N is in use; set PORT"', async () => {
      busy = createServer();
      await new Promise<void>((resolve) => busy.listen(0, resolve));
      const { port } = busy.address() as { port: number };
      await expectOneLine(
        run('main.js', { ...LOOPBACK, DATABASE_URL: migrated.url, PORT: String(port) }),
        `port ${port} is in use; set PORT`,
      );
    });

    it('0 gets a free port, and the API logs the one it got', async () => {
      const api = start('main.js', { ...LOOPBACK, DATABASE_URL: migrated.url, PORT: '0' });
      try {
        const port = await eventually(
          () => /API listening on http:\/\/[^/:]+:(\d+)/.exec(api.out.stdout)?.[1],
          { timeoutMs: 20_000, what: 'the API to listen' },
        );
        expect(Number(port)).toBeGreaterThan(0);
        expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
      } finally {
        api.child.kill('SIGTERM');
      }
      expect(await api.exited).toBe(0);
    });
  });
});
