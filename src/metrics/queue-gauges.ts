import { Inject, Injectable, Logger } from '@nestjs/common';
import pg from 'pg';
import { Gauge, Registry } from 'prom-client';
import { PG_POOL } from '../database/pg-pool.module.js';
import { WEBHOOK_STATUSES } from '../database/entities/webhook.entity.js';
import { FOLD_DEAD_COUNTS, QUEUE_STATS, QueueStatsRow } from './queue-stats.sql.js';

/** Scrapes within this long of the last computation get its figures (several Prometheus, one query). */
export const QUEUE_STATS_MAX_AGE_MS = 5000;

type Figure = Exclude<keyof QueueStatsRow, 'webhook_id' | 'topic' | 'status'>;

const GAUGES: { name: string; help: string; figure: Figure }[] = [
  {
    name: 'pgwq_webhook_pending_deliveries',
    help: 'Deliveries waiting to be delivered to the webhook (in flight and retrying included).',
    figure: 'pending',
  },
  {
    name: 'pgwq_webhook_dead_deliveries',
    help: 'Dead-lettered deliveries of the webhook still stored (see RETENTION_DEAD_SECONDS).',
    figure: 'dead',
  },
  {
    name: 'pgwq_webhook_oldest_pending_age_seconds',
    help: "Age of the webhook's oldest pending delivery; 0 when nothing is pending.",
    figure: 'oldest_pending_age_seconds',
  },
  {
    name: 'pgwq_webhook_blocked_lines',
    help: 'Partitions of the webhook stopped at a dead head until an operator redrives or skips it.',
    figure: 'blocked_lines',
  },
];

/**
 * The per-webhook queue gauges. Only the API computes them (workers do not have this provider);
 * every API replica reports the same figures, read from the database at most once per
 * QUEUE_STATS_MAX_AGE_MS. When the database does not answer, the gauges are left out of the
 * scrape (and logged) rather than repeating stale figures.
 */
@Injectable()
export class QueueGauges {
  private readonly logger = new Logger('Metrics');
  private latest: Promise<QueueStatsRow[]> | undefined;
  private latestAt = 0;

  constructor(
    registry: Registry,
    @Inject(PG_POOL) private readonly pool: pg.Pool,
  ) {
    const stats = () => this.stats();
    for (const { name, help, figure } of GAUGES) {
      new Gauge({
        name,
        help,
        labelNames: ['webhook_id', 'topic'],
        registers: [registry],
        async collect() {
          const rows = await stats();
          this.reset();
          for (const row of rows) {
            this.set({ webhook_id: row.webhook_id, topic: row.topic }, row[figure]);
          }
        },
      });
    }
    // A state set (one series per status, 1 for the current one), so an alert can say
    // `pgwq_webhook_status{status="disabled"} == 1` and a dashboard can count webhooks by status.
    new Gauge({
      name: 'pgwq_webhook_status',
      help: "1 for the webhook's current status (active, paused, disabled), 0 for the others.",
      labelNames: ['webhook_id', 'topic', 'status'],
      registers: [registry],
      async collect() {
        const rows = await stats();
        this.reset();
        for (const row of rows) {
          for (const status of WEBHOOK_STATUSES) {
            this.set(
              { webhook_id: row.webhook_id, topic: row.topic, status },
              row.status === status ? 1 : 0,
            );
          }
        }
      },
    });
  }

  /** The figures of the last QUEUE_STATS_MAX_AGE_MS, or a fresh computation shared by all four gauges. */
  private stats(): Promise<QueueStatsRow[]> {
    if (!this.latest || performance.now() - this.latestAt > QUEUE_STATS_MAX_AGE_MS) {
      this.latestAt = performance.now();
      this.latest = this.compute();
    }
    return this.latest;
  }

  private async compute(): Promise<QueueStatsRow[]> {
    try {
      await this.pool.query(FOLD_DEAD_COUNTS);
    } catch (error) {
      // The sums are right either way: folding is housekeeping.
      this.logger.warn(`could not fold dead-delivery counts (${(error as Error).message})`);
    }
    try {
      return (await this.pool.query<QueueStatsRow>(QUEUE_STATS)).rows;
    } catch (error) {
      this.logger.warn(`queue gauges left out: ${(error as Error).message}`);
      this.latest = undefined;
      return [];
    }
  }
}
