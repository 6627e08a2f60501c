import { Logger } from '@nestjs/common';
import pg from 'pg';
import { RELEASE_LINES, SKIP_MISSING_HEAD } from './delivery.sql.js';
import { fields, Job, Release, withQueryTimeout, WRITE_QUERY_TIMEOUT_MS } from './job.js';
import { Leases } from './lease.js';

/**
 * Lines handed back without an attempt: given back to the claim queue, or moved on past a head
 * that is gone.
 */
export class Releases {
  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
    private readonly leases: Leases,
  ) {}

  /** Gives lines back (RELEASE_LINES); on failure their leases simply lapse. */
  async release(releases: Release[]): Promise<void> {
    if (releases.length === 0) return;
    try {
      await this.pool.query(
        withQueryTimeout(
          {
            text: RELEASE_LINES,
            values: [
              releases.map((r) => r.line.webhook_id),
              releases.map((r) => r.line.partition_key),
              releases.map((r) => r.line.lease_token),
              releases.map((r) => r.head),
              releases.map((r) => r.delayMs),
            ],
          },
          WRITE_QUERY_TIMEOUT_MS,
        ),
      );
    } catch (error) {
      this.logger.warn(
        `could not release ${releases.length} line(s) (${(error as Error).message}); their leases will lapse`,
      );
    }
  }

  /** The claimed head has no pending delivery: moves the line on past it (SKIP_MISSING_HEAD). */
  async skipMissingHead(job: Job): Promise<void> {
    const { line } = job;
    const skipped = await this.leases.withRetries(job, 'skip missing head', () =>
      this.pool.query(
        withQueryTimeout(
          {
            text: SKIP_MISSING_HEAD,
            values: [line.webhook_id, line.partition_key, line.lease_token, line.sequence],
          },
          WRITE_QUERY_TIMEOUT_MS,
        ),
      ),
    );
    if (skipped?.rowCount) {
      this.logger.warn('head delivery no longer exists; skipped', fields(line));
    } else if (skipped) {
      // The head exists after all (committed after the claim's snapshot): claim it again.
      // (After a lost reply the line is already released, and this matches nothing.)
      await this.release([{ line, head: line.sequence, delayMs: 0 }]);
    }
  }
}
