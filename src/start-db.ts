import { resolve } from 'node:path';
import { exitOnStartupError } from './bootstrap.js';
import {
  EmbeddedDatabase,
  LOCAL_DATA_DIR,
  PREFERRED_PORT,
  startEmbeddedPostgres,
} from './database/embedded-postgres.js';
import { databaseSchemaFrom, DEFAULT_SCHEMA } from './database/schema.js';
import { runMigrations } from './database/migrate.js';

/**
 * `npm run db`: only the embedded PostgreSQL of `npm start` (same data in .data/, same port),
 * migrated, for an API and workers run as separate processes (`node dist/main.js`,
 * `node dist/worker.js`, as many as you like). Prints the DATABASE_URL they need; Ctrl-C stops it.
 */
const log = (line: string) => console.log(`[pgwq-db] ${line}`);

let db: EmbeddedDatabase | undefined;
const stop = async () => {
  await db?.stop();
  log('embedded PostgreSQL stopped');
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

try {
  db = await startEmbeddedPostgres({
    dataDir: resolve(LOCAL_DATA_DIR),
    port: PREFERRED_PORT,
    leaveSignalsToCaller: true,
  });
  const schema = databaseSchemaFrom(process.env);
  const applied = await runMigrations(db.url, undefined, schema);
  log(
    `embedded PostgreSQL ${db.started ? 'is up' : 'was already running'} in ${LOCAL_DATA_DIR}` +
      (applied.length ? `; applied ${applied.length} migration(s)` : '; schema is up to date'),
  );
  log(`DATABASE_URL=${db.url}`);
  if (schema !== DEFAULT_SCHEMA) log(`DATABASE_SCHEMA=${schema}`);
  log(
    `in other terminals, with ${schema === DEFAULT_SCHEMA ? 'that DATABASE_URL' : 'both'} ` +
      'exported (Ctrl-C here stops the database):',
  );
  // What npm start sets by itself: an open API on loopback, receivers on this machine allowed.
  console.log(
    '  API_LISTEN_ADDRESS=127.0.0.1 WEBHOOK_ALLOW_PRIVATE_NETWORKS=true node dist/main.js',
  );
  console.log('  WEBHOOK_ALLOW_PRIVATE_NETWORKS=true node dist/worker.js   # as many as you like');
} catch (error) {
  await db?.stop();
  exitOnStartupError('db', error);
}
