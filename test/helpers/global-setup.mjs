// Once per `npm test` (which builds first, so this plain-JS file can use dist/): a PostgreSQL
// (DATABASE_URL, else an embedded throwaway one) and a migrated template database that every
// test file clones with CREATE DATABASE … TEMPLATE, so files run in parallel without seeing
// each other's rows.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dist/database/embedded-postgres.js';
import { runMigrations } from '../../dist/database/migrate.js';

export default async function globalSetup() {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = mkdtempSync(join(tmpdir(), 'pgwq-test-'));
    chmodSync(dir, 0o755); // the server runs as user postgres when we are root
    const dataDir = join(dir, 'pg');
    const server = await startEmbeddedPostgres({
      dataDir,
      persistent: false,
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
