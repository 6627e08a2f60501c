import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, Env, WorkerModule } from './app.module.js';
import { createLogger } from './common/process-logger.js';
import { AppConfig, ConfigError, loadConfig } from './config/app-config.js';
import { configureApp } from './configure-app.js';

/** Reads `.env` into process.env when present; variables already set win. */
export function loadDotEnv(): void {
  try {
    process.loadEnvFile();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

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
 * Prints a start-up failure as one readable line (no stack for bad config) and exits 1; as one
 * JSON object when LOG_FORMAT asks for JSON (read raw: the configuration may be what failed).
 */
export function exitOnStartupError(role: string, error: unknown): never {
  const message = error instanceof ConfigError ? error.message : ((error as Error)?.stack ?? error);
  if (process.env.LOG_FORMAT?.trim().toLowerCase() === 'json') {
    createLogger(role, { logFormat: 'json', logLevel: 'fatal' }).fatal(`cannot start: ${message}`);
  } else {
    console.error(`[pgwq-${role}] cannot start: ${message}`);
  }
  process.exit(1);
}

export async function startApi(
  env: Env,
  options: { withWorker?: boolean; role?: string } = {},
): Promise<NestExpressApplication> {
  const role = options.role ?? 'api';
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, options), {
    logger: createLogger(role, loadConfig(env)),
    bodyParser: false,
    abortOnError: false,
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  configureApp(app);
  const { port } = app.get(AppConfig);
  await app.listen(port);
  const url = `http://localhost:${port}`;
  new Logger('Bootstrap').log(`API listening on ${url} (OpenAPI UI ${url}/docs)`);
  return app;
}

export async function startWorker(env: Env) {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(env), {
    logger: createLogger('worker', loadConfig(env)),
    abortOnError: false,
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  await app.init();
  return app;
}
