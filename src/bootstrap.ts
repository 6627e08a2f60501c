import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createServer, type AddressInfo } from 'node:net';
import { ADMIN_UI_PATH } from './admin-ui/serve-admin-ui.js';
import { AppModule, Env } from './app.module.js';
import { createLogger } from './common/process-logger.js';
import { StartupError } from './common/startup-error.js';
import { ConfigError, loadConfig } from './config/app-config.js';
import { configureApp } from './configure-app.js';
import { checkDatabase } from './database/database-check.js';
import { apiExposureProblem, listenUrl } from './security/api-exposure.js';
import { requireDatabaseUrl } from './database/pg-pool.module.js';
import { exitOnStartupError, loadEnvironment, startWorker } from './worker-bootstrap.js';

export { exitOnStartupError, loadEnvironment, startWorker };

/** The one line for a port the API cannot listen on, or undefined for other errors. */
function portProblem(error: unknown, port: number): StartupError | undefined {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') return new StartupError(`port ${port} is in use; set PORT`);
  if (code === 'EACCES') {
    return new StartupError(`port ${port} needs privileges this process lacks; set PORT`);
  }
  return undefined;
}

/**
 * Fails before anything else starts when the port is taken, so the answer comes at once and
 * without the log line Nest writes for a failed listen (which stays as the net for a race).
 */
async function checkPortFree(port: number, host: string | undefined): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(portProblem(error, port) ?? error));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

export async function startApi(
  env: Env,
  options: {
    withWorker?: boolean;
    role?: string;
    /** false: the caller handles SIGINT/SIGTERM (npm start stops its PostgreSQL after the app). */
    exitOnSignal?: boolean;
  } = {},
): Promise<NestExpressApplication> {
  const role = options.role ?? 'api';
  const config = loadConfig(env);
  const logger = createLogger(role, config);
  const exposure = apiExposureProblem(config);
  if (exposure) throw new ConfigError(exposure);
  await checkPortFree(config.port, config.apiListenAddress);
  await checkDatabase(requireDatabaseUrl(config), config.databaseSchema, (line) =>
    logger.log(line, 'Bootstrap'),
  );
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(env, options), {
    logger,
    bodyParser: false,
    abortOnError: false,
  });
  if (options.exitOnSignal !== false) app.enableShutdownHooks([], { useProcessExit: true });
  configureApp(app);
  try {
    if (config.apiListenAddress) await app.listen(config.port, config.apiListenAddress);
    else await app.listen(config.port);
  } catch (error) {
    throw portProblem(error, config.port) ?? error;
  }
  // PORT=0 asks for any free port: say which one it got.
  const { port } = app.getHttpServer().address() as AddressInfo;
  const url = listenUrl(config.apiPublishAddress ?? config.apiListenAddress, port);
  logger.log(
    `API listening on ${url} (admin UI ${url}${ADMIN_UI_PATH}, OpenAPI UI ${url}/docs)`,
    'Bootstrap',
  );
  // Published by compose: the first receiver people try runs on the host, a private address.
  if (config.apiPublishAddress !== undefined && !config.webhookAllowPrivateNetworks) {
    logger.log(
      'a receiver on this host is http://host.docker.internal:<port>/… from here, a private ' +
        'address: allow it with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true docker compose up',
      'Bootstrap',
    );
  }
  return app;
}
