import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createLogger } from './common/process-logger.js';
import { StartupError } from './common/startup-error.js';
import { ConfigError, loadConfig, loadDotEnv } from './config/app-config.js';
import { checkDatabase } from './database/database-check.js';
import { requireDatabaseUrl } from './database/pg-pool.module.js';
import { Env, WorkerModule } from './worker.module.js';

// The worker's start, apart from the API's (bootstrap.ts): `node dist/worker.js` loads only
// what delivering needs.

/**
 * Reads `.env` when present (variables already set win) and validates the result for the API
 * and the worker, which need DATABASE_URL (only `npm start` brings its own database).
 */
export function loadEnvironment(): Env {
  loadDotEnv();
  if (!loadConfig(process.env).databaseUrl) {
    throw new ConfigError(
      'DATABASE_URL is not set (only `npm start` starts an embedded PostgreSQL by itself)',
    );
  }
  return process.env;
}

/**
 * Prints a start-up failure as one readable line (a stack only for the unforeseen) and exits 1;
 * as one JSON object when LOG_FORMAT asks for JSON (read raw: the configuration may be what
 * failed).
 */
export function exitOnStartupError(role: string, error: unknown): never {
  const message =
    error instanceof StartupError ? error.message : ((error as Error)?.stack ?? error);
  if (process.env.LOG_FORMAT?.trim().toLowerCase() === 'json') {
    createLogger(role, { logFormat: 'json', logLevel: 'fatal' }).fatal(`cannot start: ${message}`);
  } else {
    console.error(`[pgwq-${role}] cannot start: ${message}`);
  }
  process.exit(1);
}

export async function startWorker(env: Env) {
  const config = loadConfig(env);
  const logger = createLogger('worker', config);
  await checkDatabase(requireDatabaseUrl(config), config.databaseSchema, (line) =>
    logger.log(line, 'Bootstrap'),
  );
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(env), {
    logger,
    abortOnError: false,
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  await app.init();
  return app;
}
