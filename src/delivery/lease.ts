import { Logger } from '@nestjs/common';
import pg from 'pg';
import { RENEW_LEASE, RenewedLease } from './delivery.sql.js';
import { fields, Job, lostReason, withQueryTimeout, WRITE_QUERY_TIMEOUT_MS } from './job.js';

/**
 * A job's lease while its head is on its way: renewed during the request, checked before one
 * starts, and the bound on how long a fenced write is retried.
 */
export class Leases {
  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
    /** The length of a lease, ms. */
    readonly leaseMs: number,
    /** The lease a request needs left before it starts: the whole request plus the margin. */
    private readonly leaseNeededMs: number,
  ) {}

  /**
   * A request may start only with enough lease left for all of it (DESIGN §3): a claim or keep
   * that waited on a lock, or a slow round trip, can leave less. Renews once when short; if the
   * lease is still short (the caller gives the line back), or another worker has the line (it
   * stays with its owner), nothing is sent.
   */
  async coverRequest(job: Job): Promise<'covered' | 'lost' | 'short'> {
    if (job.leaseDeadline - Date.now() >= this.leaseNeededMs) return 'covered';
    await this.renew(job);
    if (job.lost) {
      this.logger.warn(`not sent, ${job.lost}`, fields(job.line));
      return 'lost';
    }
    if (job.leaseDeadline - Date.now() >= this.leaseNeededMs) return 'covered';
    this.logger.warn(`not sent, the lease could not be renewed in time`, fields(job.line));
    return 'short';
  }

  /** Runs `work`, renewing the lease every third of it until it settles. */
  async renewWhile<T>(job: Job, work: () => Promise<T>): Promise<T> {
    const renewal = setInterval(
      () => {
        job.renewing ??= this.renew(job).finally(() => (job.renewing = undefined));
      },
      Math.floor(this.leaseMs / 3),
    );
    try {
      return await work();
    } finally {
      clearInterval(renewal);
    }
  }

  /**
   * Extends the lease on the current head. Marks the job lost, and aborts its request, once
   * the line is someone else's or the lease may have lapsed without a renewal.
   */
  async renew(job: Job): Promise<void> {
    if (job.lost || job.abandoned) return;
    const sentAt = Date.now();
    try {
      const { rows } = await this.pool.query<RenewedLease>(
        withQueryTimeout(
          {
            text: RENEW_LEASE,
            values: [
              job.line.webhook_id,
              job.line.partition_key,
              job.line.lease_token,
              job.line.sequence,
              this.leaseMs,
            ],
          },
          WRITE_QUERY_TIMEOUT_MS,
        ),
      );
      if (rows[0].renewed) {
        job.leaseDeadline = sentAt + this.leaseMs;
        return;
      }
      job.lost = lostReason(rows[0].line_exists);
      job.controller.abort(new Error(job.lost));
    } catch (error) {
      this.logger.warn(`lease renewal failed (${(error as Error).message})`, fields(job.line));
      if (Date.now() >= job.leaseDeadline) {
        job.lost = 'lease expired: renewal failed';
        job.controller.abort(new Error(job.lost));
      }
    }
  }

  /**
   * Runs a fenced write, retrying through a database hiccup. Gives up (undefined) once the
   * lease has surely lapsed: the fence would refuse the write anyway and another worker will
   * retry the head.
   */
  async withRetries<T>(job: Job, what: string, fn: () => Promise<T>): Promise<T | undefined> {
    for (let failure = 0; ; failure++) {
      try {
        return await fn();
      } catch (error) {
        const giveUp = job.abandoned || Date.now() > job.leaseDeadline + this.leaseMs;
        this.logger.warn(
          `${what} failed (${(error as Error).message})` +
            (giveUp ? '; giving up, the lease will lapse and the head is retried' : '; retrying'),
          fields(job.line),
        );
        if (giveUp) return undefined;
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** failure)));
      }
    }
  }
}
