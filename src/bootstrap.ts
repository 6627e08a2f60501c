import 'reflect-metadata';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule, Env, WorkerModule } from './app.module.js';
import { AppConfig, ConfigError, loadConfig } from './config/app-config.js';
import { configureApp } from './configure-app.js';
import { apiExposureProblem, listenUrl } from './security/api-exposure.js';

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

/** Prints a start-up failure as one readable line (no stack for bad config) and exits 1. */
export function exitOnStartupError(role: string, error: unknown): never {
  const message = error instanceof ConfigError ? error.message : ((error as Error)?.stack ?? error);
  console.error(`[pgwq-${role}] cannot start: ${message}`);
  process.exit(1);
}

export function createLogger(role: string): ConsoleLogger {
  // Successful attempts log at debug; keep them out of the default output.
  return new ConsoleLogger({
    prefix: `pgwq-${role}`,
    logLevels: ['log', 'warn', 'error', 'fatal'],
  });
}

export async function startApi(
  env: Env,
  options: { withWorker?: boolean; role?: string } = {},
): Promise<NestExpressApplication> {
  const role = options.role ?? 'api';
  const exposure = apiExposureProblem(loadConfig(env));
  if (exposure) throw new ConfigError(exposure);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, options), {
    logger: createLogger(role),
    bodyParser: false,
    abortOnError: false,
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  configureApp(app);
  const config = app.get(AppConfig);
  if (config.apiListenAddress) await app.listen(config.port, config.apiListenAddress);
  else await app.listen(config.port);
  const url = listenUrl(config);
  new Logger('Bootstrap').log(`API listening on ${url} (OpenAPI UI ${url}/docs)`);
  return app;
}

export async function startWorker(env: Env) {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(env), {
    logger: createLogger('worker'),
    abortOnError: false,
  });
  app.enableShutdownHooks([], { useProcessExit: true });
  await app.init();
  return app;
}
