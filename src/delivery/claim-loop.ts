import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { PG_POOL } from '../database/database.module.js';
import { retryDelaySeconds } from './backoff.js';
import {
  CLAIM_LINES,
  ClaimedLine,
  RECORD_ATTEMPT,
  RecordedAttempt,
  RELEASE_LEASES,
  RENEW_LEASE,
  SKIP_MISSING_HEAD,
} from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { NotifyListener } from './notify-listener.js';
import { signatureHeader } from './signature.js';
import { WebhookResult, WebhookSender } from './webhook-sender.js';

export type Outcome = 'delivered' | 'pending' | 'dead';

/** One claimed line whose head is being delivered by this worker. */
interface Job {
  line: ClaimedLine;
  controller: AbortController;
  /** Local time until which the lease is surely ours (measured from before the claim/renewal). */
  leaseDeadline: number;
  /** A renewal found the token gone: another worker owns the line; record nothing. */
  lost: boolean;
  /** Shutdown released the lease: record nothing. */
  abandoned: boolean;
  done?: Promise<void>;
}

const CLAIM_RETRY_BASE_MS = 100;
const CLAIM_RETRY_MAX_MS = 10_000;

/**
 * How many heads of one line a worker delivers in a row before it hands the line back to the
 * claim queue: enough to save the claim round trip on a busy line, few enough that other due
 * lines still get their turn.
 */
const HEADS_IN_A_ROW = 20;

/**
 * A named (server-side prepared) statement: PostgreSQL parses it once per connection and, after
 * a few runs, reuses its plan, where an unnamed one is parsed and planned on every call. The
 * claim's five-way join costs more to plan than to run on a small due set. With
 * DATABASE_PREPARED_STATEMENTS=false the pool sends it unnamed (UnnamedStatementsClient), for a
 * transaction-mode pooler that cannot carry named statements.
 */
function prepared(name: string, text: string, values: unknown[]): pg.QueryConfig {
  return { name, text, values };
}

/** The lease outlives the request's own timeout by this margin, at least. */
export function leaseMsFor(deliveryTimeoutMs: number): number {
  return deliveryTimeoutMs + Math.max(2000, Math.round(deliveryTimeoutMs / 2));
}

/**
 * The worker's engine: claims due lines (one per free slot, in one statement), POSTs each line's
 * head, and records the outcome fenced by the lease token. Woken by NOTIFY, by a poll timer, by
 * its own retry timers and whenever a slot frees up; it always claims from the table.
 */
@Injectable()
export class ClaimLoop implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ClaimLoop.name);
  private readonly leaseMs: number;
  private readonly jobs = new Map<string, Job>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private claiming: Promise<void> | undefined;
  private wakeRequested = false;
  private claimFailures = 0;
  private pausedUntil = 0;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly config: AppConfig,
    private readonly sender: WebhookSender,
    private readonly listener: NotifyListener,
    private readonly metrics: DeliveryMetrics,
  ) {
    this.leaseMs = leaseMsFor(config.deliveryTimeoutMs);
    metrics.trackInFlight(() => this.jobs.size);
  }

  onApplicationBootstrap(): void {
    this.running = true;
    this.listener.start(() => this.wake());
    this.pollTimer = setInterval(() => this.wake(), this.config.pollIntervalMs);
    this.logger.log(
      `delivering: concurrency ${this.config.workerConcurrency}, lease ${this.leaseMs} ms, ` +
        `poll every ${this.config.pollIntervalMs} ms`,
    );
    this.wake();
  }

  /** Look for due work now (or right after the claim in progress). */
  wake(): void {
    if (!this.running || Date.now() < this.pausedUntil) return;
    if (this.claiming) {
      this.wakeRequested = true;
      return;
    }
    this.claiming = this.claimWhileFree().finally(() => {
      this.claiming = undefined;
    });
  }

  private async claimWhileFree(): Promise<void> {
    try {
      do {
        this.wakeRequested = false;
        const free = this.config.workerConcurrency - this.jobs.size;
        if (free <= 0 || !this.running) return;
        const claimedAt = Date.now();
        const claimDone = this.metrics.startClaim();
        const { rows } = await this.pool.query<ClaimedLine>(
          prepared('pgwq_claim_lines', CLAIM_LINES, [free, this.leaseMs]),
        );
        claimDone();
        if (this.claimFailures > 0) this.logger.log('database reachable again; claiming');
        this.claimFailures = 0;
        for (const line of rows) this.start(line, claimedAt);
        // A full batch suggests more is due; a slot freeing up wakes us again anyway.
        if (rows.length === free) this.wakeRequested = true;
      } while (this.wakeRequested && this.running);
    } catch (error) {
      this.claimFailures += 1;
      const ceiling = Math.min(CLAIM_RETRY_MAX_MS, CLAIM_RETRY_BASE_MS * 2 ** this.claimFailures);
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.pausedUntil = Date.now() + delay;
      this.logger.warn(
        `claim failed (${(error as Error).message}); retrying in ${delay} ms (failure ${this.claimFailures})`,
      );
      this.later(delay, () => this.wake());
    }
  }

  private start(line: ClaimedLine, claimedAt: number): void {
    const job: Job = {
      line,
      controller: new AbortController(),
      leaseDeadline: claimedAt + this.leaseMs,
      lost: false,
      abandoned: false,
    };
    this.jobs.set(line.lease_token, job);
    job.done = this.run(job).finally(() => {
      this.jobs.delete(line.lease_token);
      this.wake();
    });
  }

  /** Delivers the claimed line's head, then the next ones while RECORD_ATTEMPT keeps the line. */
  private async run(job: Job): Promise<void> {
    for (let inARow = 1; ; inARow++) {
      const next = await this.deliverHead(job, inARow < HEADS_IN_A_ROW);
      if (!next) return;
      job.line = next; // the same lease token, renewed by RECORD_ATTEMPT
    }
  }

  private async deliverHead(job: Job, keep: boolean): Promise<ClaimedLine | undefined> {
    const { line } = job;
    try {
      if (line.delivery_id === null || line.message_id === null || line.body === null) {
        await this.skipMissingHead(job);
        return undefined;
      }
      const attempt = (line.attempts ?? 0) + 1;
      const timestamp = Math.floor(Date.now() / 1000);
      const secrets = line.previous_secret ? [line.secret, line.previous_secret] : [line.secret];
      const headers = {
        'content-type': 'application/json',
        'webhook-id': line.message_id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(secrets, line.message_id, timestamp, line.body),
        'webhook-topic': line.topic,
        'webhook-partition-key': line.partition_key,
        'webhook-sequence': line.sequence,
        'webhook-attempt': String(attempt),
      };
      const startedAt = new Date();
      const renewal = setInterval(() => void this.renew(job), Math.floor(this.leaseMs / 3));
      let result: WebhookResult;
      try {
        result = await this.sender.send(
          { url: line.url, body: line.body, headers },
          job.controller.signal,
        );
      } finally {
        clearInterval(renewal);
      }
      if (job.lost || job.abandoned) {
        if (job.lost) this.metrics.leaseLost();
        this.logger.warn(
          `result dropped, ${job.lost ? 'lease lost to another worker' : 'released at shutdown'}`,
          fields(line, attempt),
        );
        return undefined;
      }
      return await this.record(job, attempt, startedAt, result, keep && this.running);
    } catch (error) {
      // A bug, not a delivery failure: the lease lapses and another claim retries the head.
      this.logger.error(
        `unexpected error: ${(error as Error).stack ?? String(error)}`,
        fields(line),
      );
      return undefined;
    }
  }

  private async record(
    job: Job,
    attempt: number,
    startedAt: Date,
    result: WebhookResult,
    keep: boolean,
  ): Promise<ClaimedLine | undefined> {
    const { line } = job;
    const outcome: Outcome = result.ok
      ? 'delivered'
      : attempt >= this.config.maxRetries
        ? 'dead'
        : 'pending';
    const delay =
      outcome === 'pending'
        ? retryDelaySeconds(
            attempt,
            { factor: this.config.backoffFactor, maxSeconds: this.config.backoffMaxSeconds },
            { statusCode: result.statusCode ?? undefined, retryAfter: result.retryAfter },
          )
        : 0;
    const params = [
      line.webhook_id,
      line.partition_key,
      line.lease_token,
      outcome,
      delay,
      line.delivery_id,
      attempt,
      result.statusCode,
      result.error,
      startedAt.toISOString(),
      result.durationMs,
      result.responseBody === null ? null : result.responseBody.replace(/\0/g, ''),
      keep,
      this.leaseMs,
    ];
    const sentAt = Date.now();
    const fenced = await this.withRetries(job, 'record attempt', () =>
      this.pool.query<RecordedAttempt>(prepared('pgwq_record_attempt', RECORD_ATTEMPT, params)),
    );
    if (fenced === undefined) return undefined;
    const what = `${result.ok ? `HTTP ${result.statusCode}` : result.error} in ${result.durationMs} ms`;
    const about = fields(line, attempt);
    const row = fenced.rows[0];
    if (!row?.fenced) {
      this.metrics.leaseLost();
      this.logger.warn(`${what}; result dropped, lease lost to another worker`, about);
      return undefined;
    }
    this.metrics.attemptRecorded(outcome, result.durationMs);
    if (outcome === 'delivered') {
      this.logger.debug(what, about);
    } else if (outcome === 'dead') {
      this.logger.warn(`${what}; dead-lettered after ${attempt} attempts`, about);
    } else {
      this.logger.warn(`${what}; retry in ${delay.toFixed(3)} s`, about);
      // Other workers find it by polling; this one wakes right on time.
      this.later(delay * 1000, () => this.wake());
    }
    if (row.lease_token === null) return undefined;
    job.leaseDeadline = sentAt + this.leaseMs;
    return row as ClaimedLine;
  }

  private async skipMissingHead(job: Job): Promise<void> {
    const { line } = job;
    const skipped = await this.withRetries(job, 'skip missing head', () =>
      this.pool.query(SKIP_MISSING_HEAD, [line.webhook_id, line.partition_key, line.lease_token]),
    );
    if (skipped?.rowCount) {
      this.logger.warn('head delivery no longer exists; skipped', fields(line));
    } else if (skipped) {
      // The head exists after all (committed after the claim's snapshot): claim it again.
      await this.release([line.lease_token]);
    }
  }

  /** Extends the lease while the request runs; aborts the request once it may be someone else's. */
  private async renew(job: Job): Promise<void> {
    if (job.lost || job.abandoned) return;
    const sentAt = Date.now();
    try {
      const { rowCount } = await this.pool.query(
        prepared('pgwq_renew_lease', RENEW_LEASE, [
          job.line.webhook_id,
          job.line.partition_key,
          job.line.lease_token,
          this.leaseMs,
        ]),
      );
      if (rowCount) {
        job.leaseDeadline = sentAt + this.leaseMs;
        return;
      }
      job.lost = true;
      job.controller.abort(new Error('lease lost to another worker'));
    } catch (error) {
      this.logger.warn(`lease renewal failed (${(error as Error).message})`, fields(job.line));
      if (Date.now() >= job.leaseDeadline) {
        job.lost = true;
        job.controller.abort(new Error('lease expired: renewal failed'));
      }
    }
  }

  /**
   * Runs a fenced write, retrying through a database hiccup. Gives up (undefined) once the
   * lease has surely lapsed: the fence would refuse the write anyway and another worker will
   * retry the head.
   */
  private async withRetries<T>(
    job: Job,
    what: string,
    fn: () => Promise<T>,
  ): Promise<T | undefined> {
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

  private async release(tokens: string[]): Promise<void> {
    try {
      await this.pool.query(RELEASE_LEASES, [tokens]);
    } catch (error) {
      this.logger.warn(
        `could not release ${tokens.length} lease(s) (${(error as Error).message}); they will lapse`,
      );
    }
  }

  /** A timer that shutdown cancels. */
  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  /**
   * Graceful stop, before the pool closes: no more claims, in-flight POSTs get up to
   * DELIVERY_TIMEOUT_MS to finish and be recorded, anything left is aborted and its lease
   * released so another worker takes the line at once. A second signal exits immediately.
   */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (signal) {
      const force = (again: string) => {
        this.logger.warn(`${again} again: exiting now; unfinished leases will lapse`);
        process.exit(1);
      };
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
    }
    clearInterval(this.pollTimer);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.logger.log(`stopping: ${this.jobs.size} deliveries in flight`);
    await this.listener.stop();
    await this.claiming;
    const inFlight = () => [...this.jobs.values()].map((job) => job.done);
    if (!(await settledWithin(inFlight(), this.config.deliveryTimeoutMs))) {
      const left = [...this.jobs.values()];
      for (const job of left) {
        job.abandoned = true;
        job.controller.abort(new Error('worker shutting down'));
      }
      await this.release(left.map((job) => job.line.lease_token));
      this.logger.warn(`released ${left.length} unfinished lease(s)`);
      await settledWithin(inFlight(), 1000);
    }
    this.logger.log('stopped');
  }
}

/** Resolves true when all settle within ms, false on the deadline. */
async function settledWithin(
  promises: (Promise<void> | undefined)[],
  ms: number,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([Promise.allSettled(promises).then(() => true as const), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The identifying fields of a delivery's log line: fields of the JSON object with
 * LOG_FORMAT=json, after the message in text. Never the payload or secrets.
 */
function fields(line: ClaimedLine, attempt?: number) {
  return {
    webhook_id: line.webhook_id,
    partition_key: line.partition_key,
    sequence: Number(line.sequence),
    delivery_id: line.delivery_id === null ? null : Number(line.delivery_id),
    message_id: line.message_id === null ? null : Number(line.message_id),
    ...(attempt === undefined ? {} : { attempt }),
  };
}
