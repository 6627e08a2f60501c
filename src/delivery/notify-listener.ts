import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { PG_POOL, requireDatabaseUrl } from '../database/pg-pool.module.js';
import { NOTIFY_CHANNEL } from '../queue/queue.sql.js';
import { LISTEN, LISTEN_PROBE, NOTIFY_PROBE, PROBE_CHANNEL } from './delivery.sql.js';
import { DATABASE_TIMEOUTS } from '../database/pool-options.js';

const RECONNECT_BASE_MS = 250;
const RECONNECT_MAX_MS = 30_000;
/** A committed notification reaches an idle listener in milliseconds; silence this long is a no. */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * LISTEN on one dedicated connection, outside the pool (a pooled connection would hand the
 * LISTEN to whoever borrows it next). A notification only wakes the claim loop; the loop always
 * claims from the table, and it also polls, so a lost notification costs at most a poll.
 *
 * LISTEN does not survive a dropped connection: on any error we reconnect with exponential
 * backoff plus jitter, LISTEN again and wake the loop once for whatever we missed meanwhile.
 *
 * The connection is DATABASE_LISTEN_URL (default DATABASE_URL). Through a transaction-mode
 * pooler a LISTEN lands on whichever server connection runs that one statement, which then
 * serves other clients: this session never hears a thing, and no error says so. So before
 * listening for work, each connection checks that it hears a test notification sent from
 * another session (the pool); if not, it warns once and stops, and the poll finds new work.
 */
@Injectable()
export class NotifyListener {
  private readonly logger = new Logger(NotifyListener.name);
  private client: pg.Client | undefined;
  private readonly dead = new WeakSet<pg.Client>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = true;
  private onWake: () => void = () => undefined;

  constructor(
    private readonly config: AppConfig,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
  ) {}

  /** True while the LISTEN connection is up (a metric; the loop polls either way). */
  get connected(): boolean {
    return this.client !== undefined;
  }

  start(onWake: () => void): void {
    this.onWake = onWake;
    this.stopped = false;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      this.dead.add(client);
      await client.end().catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.config.databaseListenUrl ?? requireDatabaseUrl(this.config),
      application_name: 'pgwq-listener',
      connectionTimeoutMillis: DATABASE_TIMEOUTS.connectMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: DATABASE_TIMEOUTS.keepAliveInitialDelayMs,
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection closed')));
    client.on('notification', (n) => {
      if (n.channel === NOTIFY_CHANNEL) this.onWake();
    });
    let hears: boolean;
    try {
      await client.connect();
      await client.query(LISTEN_PROBE);
      hears = await this.hearsProbe(client);
      if (hears) await client.query(LISTEN);
    } catch (error) {
      this.lost(client, error as Error);
      return;
    }
    if (!hears && !this.stopped && !this.dead.has(client)) {
      this.dead.add(client);
      await client.end().catch(() => undefined);
      this.logger.warn(
        `LISTEN does not work on DATABASE_LISTEN_URL: a test notification sent through ` +
          `DATABASE_URL did not arrive within ${PROBE_TIMEOUT_MS / 1000} s (a transaction-mode ` +
          `pooler such as PgBouncer, RDS Proxy or Supavisor in between?). Not listening: new ` +
          `work waits for the poll, every POLL_INTERVAL_MS=${this.config.pollIntervalMs} ms. ` +
          `Set DATABASE_LISTEN_URL to a direct or session-mode connection to the database.`,
      );
      return;
    }
    if (this.stopped || this.dead.has(client)) {
      this.dead.add(client);
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    if (this.failures > 0) this.logger.log(`listening on ${NOTIFY_CHANNEL} again`);
    this.failures = 0;
    // Anything notified while we were away is in the table: look now.
    this.onWake();
  }

  /** NOTIFYs the probe channel from another session (the pool) and waits to hear it here. */
  private async hearsProbe(client: pg.Client): Promise<boolean> {
    const token = randomUUID();
    let onNotification = (_: pg.Notification) => undefined as unknown;
    const heard = new Promise<boolean>((resolve) => {
      onNotification = (n) => n.channel === PROBE_CHANNEL && n.payload === token && resolve(true);
      client.on('notification', onNotification);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.pool.query(NOTIFY_PROBE, [token]);
      const silence = new Promise<boolean>((resolve) => {
        timer = setTimeout(resolve, PROBE_TIMEOUT_MS, false).unref();
      });
      return await Promise.race([heard, silence]);
    } finally {
      clearTimeout(timer);
      client.off('notification', onNotification);
    }
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.dead.has(client)) return;
    this.dead.add(client);
    if (this.client === client) this.client = undefined;
    client.end().catch(() => undefined);
    if (this.stopped) return;
    this.failures += 1;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** (this.failures - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.logger.warn(
      `LISTEN connection lost (${error.message}); reconnecting in ${delay} ms (attempt ${this.failures})`,
    );
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }
}
