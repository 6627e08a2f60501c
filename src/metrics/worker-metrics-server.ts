import http from 'node:http';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import { Registry } from 'prom-client';
import { AppConfig, ConfigError } from '../config/app-config.js';
import { PG_POOL } from '../database/database.module.js';
import { DeliveryMetrics } from '../delivery/delivery-metrics.js';
import { databaseAnswers } from '../health/database-answers.js';

/**
 * The worker's own small HTTP server on METRICS_PORT (the worker has no Nest HTTP app):
 *
 * - GET /metrics: this worker's metrics (claims, attempts, leases, LISTEN, process).
 * - GET /health: 200 while the database answers and the claim loop is alive, else 503 with the
 *   reason, for container healthchecks and Kubernetes probes.
 *
 * The claim loop is alive when it claimed successfully within the last few poll intervals (it
 * claims on every poll), or when all its slots are busy (it then has nothing to claim for).
 * A claim stuck on a dead connection, or failing over and over, turns /health to 503.
 */
@Injectable()
export class WorkerMetricsServer implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private readonly stalledAfterMs: number;
  private server: http.Server | undefined;

  constructor(
    private readonly config: AppConfig,
    private readonly registry: Registry,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly delivery: DeliveryMetrics,
  ) {
    this.stalledAfterMs = Math.max(5 * config.pollIntervalMs, 10_000);
  }

  /** Before the claim loop starts (onApplicationBootstrap): a port in use stops the worker first. */
  async onModuleInit(): Promise<void> {
    const port = this.config.metricsPort;
    if (port === 0) return;
    const server = http.createServer((req, res) => void this.answer(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((error: NodeJS.ErrnoException) => {
      throw new ConfigError(
        `METRICS_PORT ${port} cannot be used (${error.code ?? error.message}); give each worker ` +
          'on one host its own port, or 0 for no metrics server',
      );
    });
    this.server = server;
    this.logger.log(`metrics on http://localhost:${port}/metrics, health on /health`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  /** Why the worker is unhealthy, or undefined when it is not. */
  private async problem(): Promise<string | undefined> {
    if (!(await databaseAnswers(this.pool))) return 'the database does not answer';
    const saturated = this.delivery.inFlight() >= this.config.workerConcurrency;
    const sinceClaim = this.delivery.msSinceClaim();
    if (!saturated && sinceClaim > this.stalledAfterMs) {
      return `the claim loop has not claimed for ${Math.round(sinceClaim / 1000)} s`;
    }
    return undefined;
  }

  private async answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://worker').pathname;
    try {
      if (req.method === 'GET' && path === '/metrics') {
        res.writeHead(200, { 'content-type': this.registry.contentType });
        res.end(await this.registry.metrics());
      } else if (req.method === 'GET' && path === '/health') {
        const problem = await this.problem();
        if (problem) sendJson(res, 503, errorBody(503, 'Service Unavailable', problem));
        else sendJson(res, 200, { status: 'ok' });
      } else {
        sendJson(res, 404, errorBody(404, 'Not Found', 'only GET /metrics and GET /health'));
      }
    } catch (error) {
      this.logger.error(`metrics server: ${(error as Error).stack ?? String(error)}`);
      if (!res.headersSent) sendJson(res, 500, errorBody(500, 'Internal Server Error', 'error'));
      else res.destroy();
    }
  }
}

/** The API's error shape (DESIGN §5), so a probe reads the same JSON from both. */
function errorBody(status_code: number, error: string, message: string) {
  return { status_code, error, message };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}
