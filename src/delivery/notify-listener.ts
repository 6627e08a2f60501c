import { Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { requireDatabaseUrl } from '../database/database.module.js';
import { DATABASE_TIMEOUTS } from '../database/pool-options.js';
import { LISTEN, NOTIFY_CHANNEL } from './delivery.sql.js';

const RECONNECT_BASE_MS = 250;
const RECONNECT_MAX_MS = 30_000;

/**
 * LISTEN on one dedicated connection, outside the pool (a pooled connection would hand the
 * LISTEN to whoever borrows it next). A notification only wakes the claim loop; the loop always
 * claims from the table, and it also polls, so a lost notification costs at most a poll.
 *
 * LISTEN does not survive a dropped connection: on any error we reconnect with exponential
 * backoff plus jitter, LISTEN again and wake the loop once for whatever we missed meanwhile.
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

  constructor(private readonly config: AppConfig) {}

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
      connectionString: requireDatabaseUrl(this.config),
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
    try {
      await client.connect();
      await client.query(LISTEN);
    } catch (error) {
      this.lost(client, error as Error);
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
