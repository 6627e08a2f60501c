// Once per `npm test` (which builds first, so this plain-JS file can use dist/): a PostgreSQL
// (DATABASE_URL, else an embedded throwaway one) and a migrated template database that every
// test file clones with CREATE DATABASE … TEMPLATE, so files run in parallel without seeing
// each other's rows. The tests read no .env: only the environment configures them.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dist/database/embedded-postgres.js';
import { runMigrations } from '../../dist/database/migrate.js';

/** Listens on `port` on every interface; the server, or undefined when it is taken. */
function holdPort(port) {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', () => resolve(undefined));
    server.listen(port, () => resolve(server));
  });
}

export default async function globalSetup() {
  // `npm test` must pass while `npm start` serves on the default port 8000: every test binds
  // port 0 or a free port. Holding 8000 here (when free) makes a test that forgets fail every
  // time, not only on a machine where npm start happens to run.
  globalThis.__PGWQ_PORT_HELD__ = await holdPort(8000);
  // One temp folder for everything the tests write (global-teardown removes it). Child processes
  // run in its empty `cwd` folder: the API, the worker and npm start read .env from their working
  // directory, and the project's .env must not configure them.
  const scratch = mkdtempSync(join(tmpdir(), 'pgwq-test-'));
  chmodSync(scratch, 0o755); // the embedded server runs as user postgres when we are root
  mkdirSync(join(scratch, 'cwd'));
  process.env.PGWQ_TEST_SCRATCH = scratch;

  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const server = await startEmbeddedPostgres({
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
    });
    globalThis.__PGWQ_EMBEDDED__ = server;
    adminUrl = server.url;
  }
  const template = `pgwq_template_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${template}`);
  } finally {
    await admin.end();
  }
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  await runMigrations(templateUrl.toString());
  process.env.PGWQ_TEST_ADMIN_URL = adminUrl;
  process.env.PGWQ_TEST_TEMPLATE = template;
}
