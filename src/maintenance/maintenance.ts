import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import pg from 'pg';
import { PG_POOL } from '../database/pg-pool.module.js';
import { settledWithin } from '../database/pool-options.js';
import { inTransaction } from '../database/transaction.js';
import type { MaintenanceTask } from './maintenance-task.js';
import { Retention } from './retention.js';
import { WebhookPurge } from './webhook-purge.js';

/** The first key of every maintenance advisory lock ('pgwq'), apart from producers' own locks. */
export const MAINTENANCE_LOCK_CLASS = 0x70677771;

/** How often each worker looks for maintenance to do. */
const MAINTENANCE_INTERVAL_MS = 1000;

/**
 * The least rest between two batches of a task. The rest is as long as the batch took, and at
 * least this: maintenance holds at most half of one connection's time and leaves the database,
 * the locks it shares with delivery and the WAL writer room between batches.
 */
const MAINTENANCE_PAUSE_MS = 20;

/**
 * How long shutdown waits for the batch in progress. A batch on a silent connection would hold
 * shutdown for a whole query timeout; left unfinished, its transaction rolls back with the
 * connection, so nothing is half done.
 */
const MAINTENANCE_STOP_MS = 3000;

/**
 * Runs the maintenance tasks in every worker: each tick, each task's batches one after another
 * while it has more, with a rest between them. A batch is one transaction that first takes the
 * task's transaction-level advisory lock with pg_try_advisory_xact_lock, so across all workers
 * one batch of a task runs at a time and the others skip their turn. Transaction-level, not
 * session-level: behind PgBouncer in transaction mode a session lock would stay with a server
 * connection other clients get next.
 */
@Injectable()
export class Maintenance implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(Maintenance.name);
  private readonly tasks: MaintenanceTask[];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private running = false;
  /** Ends the rest between batches early (at shutdown). */
  private endRest: (() => void) | undefined;

  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    purge: WebhookPurge,
    retention: Retention,
  ) {
    this.tasks = [purge, retention];
  }

  onApplicationBootstrap(): void {
    this.running = true;
    this.timer = setInterval(() => this.tick(), MAINTENANCE_INTERVAL_MS);
  }

  private tick(): void {
    if (this.ticking || !this.running) return;
    this.ticking = this.runTasks().finally(() => {
      this.ticking = undefined;
    });
  }

  private async runTasks(): Promise<void> {
    for (const task of this.tasks) {
      while (this.running) {
        const started = performance.now();
        if ((await this.runBatch(task)) !== 'more') break;
        await this.rest(Math.max(MAINTENANCE_PAUSE_MS, performance.now() - started));
      }
    }
  }

  private rest(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.endRest = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * One batch of `task` in its own transaction: 'busy' when another worker holds the task's
   * lock, 'more' or 'done' as the task says, 'failed' (logged) on an error.
   */
  async runBatch(task: MaintenanceTask): Promise<'busy' | 'more' | 'done' | 'failed'> {
    try {
      return await inTransaction(this.pool, async (client) => {
        const { rows } = await client.query<{ ours: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1, $2) AS ours',
          [MAINTENANCE_LOCK_CLASS, task.lockKey],
        );
        // Busy: the transaction has done nothing, so its COMMIT is as good as a ROLLBACK.
        if (!rows[0].ours) return 'busy';
        return (await task.runBatch(client)) ? 'more' : 'done';
      });
    } catch (error) {
      this.logger.warn(`${task.name} failed (${(error as Error).message}); trying again later`);
      return 'failed';
    }
  }

  /** Before the pool closes: no new batch, and the one running finishes or is abandoned. */
  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    this.endRest?.();
    if (this.ticking && !(await settledWithin(this.ticking, MAINTENANCE_STOP_MS))) {
      this.logger.warn('a maintenance batch did not finish in time; its transaction rolls back');
    }
  }
}
