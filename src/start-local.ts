import type { INestApplication } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { resolve } from 'node:path';
import { exitOnStartupError, startApi } from './bootstrap.js';
import { createLogger } from './common/process-logger.js';
import { loadConfig, loadDotEnv } from './config/app-config.js';
import {
  EmbeddedDatabase,
  LOCAL_DATA_DIR,
  PREFERRED_PORT,
  startEmbeddedPostgres,
} from './database/embedded-postgres.js';
import { psqlCommand } from './database/schema.js';
import { runMigrations } from './database/migrate.js';

/**
 * `npm start`: the all-in-one for a new user. Without DATABASE_URL it starts an embedded
 * PostgreSQL with its data in .data/ (or adopts the one a crashed run left behind), then
 * migrates, serves the API and runs one worker. Ctrl-C stops the app, then that PostgreSQL.
 * Receivers on localhost are the usual first test, so private networks are allowed by default;
 * the API listens on 127.0.0.1 by default, where it may stay open (no API_KEYS).
 */
async function main() {
  const logger = new Logger('start');
  // The default applies only when neither the environment nor .env sets it, so an explicit
  // WEBHOOK_ALLOW_PRIVATE_NETWORKS=false (e.g. from .env.example) is honoured by npm start too.
  loadDotEnv();
  process.env.WEBHOOK_ALLOW_PRIVATE_NETWORKS ??= 'true';
  // Only this machine can reach it unless told otherwise, so it may run without API keys.
  process.env.API_LISTEN_ADDRESS ??= '127.0.0.1';
  const config = loadConfig(process.env);
  Logger.overrideLogger(createLogger('local', config));
  if (config.webhookAllowPrivateNetworks) {
    logger.warn(
      'WEBHOOK_ALLOW_PRIVATE_NETWORKS=true: webhooks may point at localhost and private networks ' +
        '(the default of npm start only; node dist/main and the containers refuse them)',
    );
  }

  let db: EmbeddedDatabase | undefined;
  // close(signal) hands the signal to the shutdown hooks, so a second Ctrl-C exits at once
  // (ClaimLoop); Nest's interface type leaves the parameter out.
  let app: (INestApplication & { close(signal?: string): Promise<void> }) | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    try {
      await app?.close(signal); // the worker finishes or releases what it has in flight
      if (db) {
        await db.stop();
        logger.log('embedded PostgreSQL stopped');
      }
      process.exit(app ? 0 : 130);
    } catch (error) {
      console.error(`[pgwq-local] stopping failed: ${(error as Error)?.stack ?? error}`);
      process.exit(1);
    }
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  try {
    if (!config.databaseUrl) {
      const dataDir = resolve(LOCAL_DATA_DIR);
      logger.log(
        `DATABASE_URL is not set: starting an embedded PostgreSQL with its data in ${dataDir}`,
      );
      db = await startEmbeddedPostgres({
        dataDir,
        port: PREFERRED_PORT,
        leaveSignalsToCaller: true,
      });
      process.env.DATABASE_URL = db.url;
      logger.log(
        db.started
          ? `embedded PostgreSQL is up on port ${new URL(db.url).port}`
          : `reusing the embedded PostgreSQL still running on port ${new URL(db.url).port}`,
      );
    }
    const applied = await runMigrations(
      process.env.DATABASE_URL!,
      (line) => logger.log(line),
      config.databaseSchema,
    );
    logger.log(applied.length ? `applied ${applied.length} migrations` : 'schema is up to date');
    app = await startApi(process.env, { withWorker: true, role: 'local', exitOnSignal: false });
    if (db) logger.log(`publish with SQL: ${psqlCommand(db.url, config.databaseSchema)}`);
  } catch (error) {
    await db?.stop();
    exitOnStartupError('local', error);
  }
}

await main();
