import { rmSync } from 'node:fs';
import pg from 'pg';

export default async function globalTeardown() {
  globalThis.__PGWQ_PORT_HELD__?.close();
  if (globalThis.__PGWQ_EMBEDDED__) {
    await globalThis.__PGWQ_EMBEDDED__.stop();
  } else {
    const admin = new pg.Client({ connectionString: process.env.PGWQ_TEST_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${process.env.PGWQ_TEST_TEMPLATE} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  }
  rmSync(process.env.PGWQ_TEST_SCRATCH, { recursive: true, force: true });
}
