import { Logger } from '@nestjs/common';
import { resolve } from 'node:path';
import { exitOnStartupError, loadDotEnv, startApi } from './bootstrap.js';
import { createLogger } from './common/process-logger.js';
import { loadConfig } from './config/app-config.js';
import { startEmbeddedPostgres } from './database/embedded-postgres.js';
import { runMigrations } from './database/migrate.js';

/**
 * `npm start`: the all-in-one for a new user. Without DATABASE_URL it starts an embedded
 * PostgreSQL with its data in .data/, then migrates, serves the API and runs one worker.
 * Receivers on localhost are the usual first test, so private networks are allowed by default.
 */
async function main() {
  const logger = new Logger('start');
  // The default applies only when neither the environment nor .env sets it, so an explicit
  // WEBHOOK_ALLOW_PRIVATE_NETWORKS=false (e.g. from .env.example) is honoured by npm start too.
  loadDotEnv();
  process.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS ??= 'true';
  const config = loadConfig(process.env);
  Logger.overrideLogger(createLogger('local', config));
  let databaseUrl = config.databaseUrl;
  if (config.webhookAllowPrivateNetworks) {
    logger.warn(
      'WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: webhooks may point at localhost and private networks ' +
        '(the default of npm start only; node dist/main and the containers refuse them)',
    );
  }
  if (!databaseUrl) {
    const dataDir = resolve('.data', 'postgres');
    logger.log(
      `DATABASE_URL is not set: starting an embedded PostgreSQL with its data in ${dataDir}`,
    );
    const db = await startEmbeddedPostgres({
      dataDir,
      persistent: true,
      onLog: (line) => String(line).startsWith('reusing') && logger.log(String(line)),
    });
    databaseUrl = db.url;
    process.env.DATABASE_URL = databaseUrl;
    logger.log(`embedded PostgreSQL is up: ${db.url}`);
  }
  const applied = await runMigrations(databaseUrl);
  logger.log(applied.length ? `applied migrations: ${applied.join(', ')}` : 'schema is up to date');
  await startApi(process.env, { withWorker: true, role: 'local' });
}

main().catch((error) => exitOnStartupError('local', error));
