import { spawn } from 'node:child_process';
import { composeEnvironment } from './helpers/compose.js';
import { createTestDatabase, SCHEMA_ENV, TestDatabase } from './helpers/db.js';
import { built, childCwd } from './helpers/scratch.js';

const KEY = 'compose-test-key-0123456789abcdefghijkl';

/**
 * The containers' processes as plain processes with the environment docker-compose.yml gives
 * them. Only DATABASE_URL (the compose network's `db`) and PORT (8000 may be taken here) differ.
 */
function run(entry: string, env: Record<string, string>, db: TestDatabase) {
  return new Promise<{ outcome: number | 'listening'; output: string; url?: string }>((resolve) => {
    const child = spawn(process.execPath, [built(entry)], {
      env: { PATH: process.env.PATH ?? '', ...SCHEMA_ENV, ...env, DATABASE_URL: db.url, PORT: '0' },
      cwd: childCwd(),
    });
    let output = '';
    let port: string | undefined;
    const collect = (d: Buffer) => {
      output += d.toString();
      port ??= /API listening on http:\/\/[^ ]+:(\d+)/.exec(output)?.[1];
      if (port) resolve({ outcome: 'listening', output, url: `http://127.0.0.1:${port}` });
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('exit', (code) => resolve({ outcome: code!, output }));
    running.push(child);
  });
}
const running: ReturnType<typeof spawn>[] = [];

describe('docker-compose.yml, its processes run as plain processes', () => {
  let db: TestDatabase;
  let empty: TestDatabase;
  beforeAll(async () => {
    [db, empty] = await Promise.all([createTestDatabase(), createTestDatabase({ empty: true })]);
  });
  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await Promise.all([db?.drop(), empty?.drop()]);
  });

  it('with no variables set, the api serves an open API (published on loopback)', async () => {
    const env = composeEnvironment('api');
    expect(env.API_PUBLISH_ADDRESS).toBe('127.0.0.1');
    expect(env.API_LISTEN_ADDRESS).toBeUndefined(); // every interface of its container
    const api = await run('main.js', env, db);
    expect(api.outcome).toBe('listening');
    expect((await fetch(`${api.url}/topics`)).status).toBe(200);
  });

  it('published elsewhere without API_KEYS, migrate stops the stack with one line', async () => {
    const shell = { API_PUBLISH_ADDRESS: '0.0.0.0' };
    const migrate = await run('migrate.js', composeEnvironment('migrate', shell), empty);
    expect(migrate.outcome).toBe(1);
    expect(migrate.output.trim().split('\n')).toEqual([
      expect.stringMatching(
        /the API would refuse to start: API_KEYS is not set, and the API is published on 0\.0\.0\.0/,
      ),
    ]);
    const tables = await empty.pool.query(`SELECT to_regclass('typeorm_migrations') AS t`);
    expect(tables.rows[0].t).toBeNull(); // nothing migrated
    // The api refuses the same way, should it be started anyway.
    const api = await run('main.js', composeEnvironment('api', shell), db);
    expect(api.outcome).toBe(1);
    expect(api.output.trim().split('\n')).toEqual([
      expect.stringMatching(/cannot start: API_KEYS is not set, and the API is published on/),
    ]);
  });

  it('published elsewhere with API_KEYS, both go ahead', async () => {
    const shell = { API_PUBLISH_ADDRESS: '0.0.0.0', API_KEYS: KEY };
    expect((await run('migrate.js', composeEnvironment('migrate', shell), db)).outcome).toBe(0);
    const api = await run('main.js', composeEnvironment('api', shell), db);
    expect(api.outcome).toBe('listening');
    expect((await fetch(`${api.url}/topics`)).status).toBe(401);
  });
});
