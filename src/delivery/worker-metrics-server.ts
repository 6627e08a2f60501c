import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import { Registry } from 'prom-client';
import { AppConfig, ConfigError } from '../config/app-config.js';
import { PG_POOL } from '../database/pg-pool.module.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { databaseAnswers } from '../database/database-answers.js';

/** Ports tried after METRICS_PORT when it is taken, before any free one the system gives. */
const NEXT_PORTS_TRIED = 20;

/**
 * What one scraper and a few probes need, and no more: a flood of connections must not take the
 * file descriptors the worker's own sockets to receivers and the database need. A connection
 * over the cap is closed as it arrives; one that has not sent its headers in 2 s, or its request
 * in 5 s, or idles 5 s between requests, is closed (Node checks every second).
 */
const MAX_CONNECTIONS = 32;
const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 5_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** How long /health reuses its database check: probes in a tight loop cost one query a second. */
const DATABASE_CHECK_TTL_MS = 1_000;

/**
 * The worker's own small HTTP server on METRICS_PORT, bound to METRICS_HOST (loopback unless
 * told), bounded as above (the worker has no Nest HTTP app):
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
  private databaseCheck: { at: number; answers: Promise<boolean> } | undefined;

  constructor(
    private readonly config: AppConfig,
    private readonly registry: Registry,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly delivery: DeliveryMetrics,
  ) {
    this.stalledAfterMs = Math.max(5 * config.pollIntervalMs, 10_000);
  }

  /**
   * Before the claim loop starts (onApplicationBootstrap). A taken METRICS_PORT is not fatal: a
   * second worker on the same host takes the next free port (or, after NEXT_PORTS_TRIED, any)
   * and says which. An address that cannot be bound at all (METRICS_HOST not on this host)
   * stops the worker, naming the variable.
   */
  async onModuleInit(): Promise<void> {
    const wanted = this.config.metricsPort;
    if (wanted === 0) return;
    const host = this.config.metricsHost;
    const server = http.createServer((req, res) => void this.answer(req, res));
    server.maxConnections = MAX_CONNECTIONS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    (server as http.Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
      1000;
    const candidates = [
      ...Array.from({ length: NEXT_PORTS_TRIED + 1 }, (_, i) => wanted + i).filter(
        (port) => port <= 65535,
      ),
      0,
    ];
    let port: number | undefined;
    for (const candidate of candidates) {
      try {
        await listen(server, candidate, host);
        port = (server.address() as AddressInfo).port;
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE' || code === 'EACCES') continue;
        throw new ConfigError(
          `METRICS_HOST ${host} cannot be used (${code ?? (error as Error).message}); ` +
            'give an address of this host, or METRICS_PORT=0 for no metrics server',
        );
      }
    }
    if (port === undefined) throw new ConfigError(`METRICS_PORT: no port free on ${host}`);
    this.server = server;
    const where = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    if (port === wanted) {
      this.logger.log(`metrics on ${where}/metrics, health on /health`);
    } else {
      this.logger.warn(
        `METRICS_PORT ${wanted} is taken (another worker on this host?): metrics on ` +
          `${where}/metrics, health on /health`,
      );
    }
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
    if (!(await this.databaseAnswers())) return 'the database does not answer';
    const saturated = this.delivery.inFlight() >= this.config.workerConcurrency;
    const sinceClaim = this.delivery.msSinceClaim();
    if (!saturated && sinceClaim > this.stalledAfterMs) {
      return `the claim loop has not claimed for ${Math.round(sinceClaim / 1000)} s`;
    }
    return undefined;
  }

  /** databaseAnswers, asked at most once a second (a check under way is shared). */
  private databaseAnswers(): Promise<boolean> {
    const now = Date.now();
    if (!this.databaseCheck || now - this.databaseCheck.at >= DATABASE_CHECK_TTL_MS) {
      this.databaseCheck = { at: now, answers: databaseAnswers(this.pool) };
    }
    return this.databaseCheck.answers;
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

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The API's error shape (DESIGN §5), so a probe reads the same JSON from both. */
function errorBody(status_code: number, error: string, message: string) {
  return { status_code, error, message };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}
