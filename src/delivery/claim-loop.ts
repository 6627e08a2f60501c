import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { PG_POOL } from '../database/pg-pool.module.js';
import { settledWithin } from '../database/pool-options.js';
import { CircuitBreakers } from './circuit-breaker.js';
import { Claims } from './claim.js';
import { ClaimedLine } from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { fields, Job, leaseMarginMs, leaseMsFor } from './job.js';
import { Leases } from './lease.js';
import { NotifyListener } from './notify-listener.js';
import { Recording } from './record.js';
import { Releases } from './release.js';
import { Sending } from './send.js';
import { WebhookSender } from './webhook-sender.js';

const CLAIM_RETRY_BASE_MS = 100;
const CLAIM_RETRY_MAX_MS = 10_000;

/** How long shutdown waits for the LISTEN connection to close. */
const LISTENER_STOP_MS = 2_000;

/**
 * How many heads of one line a worker delivers in a row before it hands the line back to the
 * claim queue, while all its slots are taken: enough to save the claim round trip on a busy
 * line, few enough that other due lines still get their turn. With a slot free, other due lines
 * need no turn from it (a claim puts them in the free slots), so a line is kept as long as it
 * has heads: a hot partition pays no claim every HEADS_IN_A_ROW messages.
 */
const HEADS_IN_A_ROW = 20;

/**
 * The worker's engine: claims due lines (one per free slot, in one statement), POSTs each line's
 * head, and records the outcome fenced by the lease token. Woken by NOTIFY, by a poll timer, by
 * its own retry timers and whenever a slot frees up; it always claims from the table.
 *
 * A head's journey, each step in a room of its own: the claim (claim.ts, with the per-webhook
 * caps and the breakers' blocks), the send (send.ts), the record (record.ts), or a release
 * without an attempt (release.ts); the lease is renewed meanwhile (lease.ts). This loop hands
 * the lines from one to the next, and drains at shutdown.
 */
@Injectable()
export class ClaimLoop implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ClaimLoop.name);
  private readonly leaseMs: number;
  private readonly jobs = new Map<string, Job>();
  private readonly claims: Claims;
  private readonly leases: Leases;
  private readonly releases: Releases;
  private readonly sending: Sending;
  private readonly recording: Recording;
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private claiming: Promise<void> | undefined;
  private wakeRequested = false;
  private claimFailures = 0;
  private pausedUntil = 0;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(PG_POOL) pool: pg.Pool,
    private readonly config: AppConfig,
    sender: WebhookSender,
    private readonly listener: NotifyListener,
    private readonly metrics: DeliveryMetrics,
  ) {
    this.leaseMs = leaseMsFor(config.deliveryTimeoutMs);
    metrics.trackInFlight(() => this.jobs.size);
    const leaseNeededMs = config.deliveryTimeoutMs + leaseMarginMs(config.deliveryTimeoutMs);
    const breakers = new CircuitBreakers(config.deliveryTimeoutMs);
    this.claims = new Claims(pool, config, metrics, breakers, this.leaseMs);
    this.leases = new Leases(pool, this.logger, this.leaseMs, leaseNeededMs);
    this.releases = new Releases(pool, this.logger, this.leases);
    this.sending = new Sending(
      this.logger,
      sender,
      breakers,
      this.claims,
      this.leases,
      this.releases,
    );
    this.recording = new Recording(
      pool,
      config,
      this.logger,
      metrics,
      this.leases,
      this.releases,
      (ms) => this.later(ms, () => this.wake()),
    );
  }

  onApplicationBootstrap(): void {
    this.running = true;
    this.listener.start(() => this.wake());
    this.pollTimer = setInterval(() => this.wake(), this.config.pollIntervalMs);
    this.logger.log(
      `delivering: concurrency ${this.config.workerConcurrency} ` +
        `(${this.config.workerConcurrencyPerWebhook} per webhook), lease ${this.leaseMs} ms, ` +
        `poll every ${this.config.pollIntervalMs} ms`,
    );
    this.wake();
  }

  /**
   * Look for due work now (or right after the claim in progress). `newWork` false: only a slot
   * of ours freed up, nothing new may be due.
   */
  wake(newWork = true): void {
    if (newWork) this.claims.newWork();
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
        const claimed = await this.claims.claim(free);
        if (this.claimFailures > 0) this.logger.log('database reachable again; claiming');
        this.claimFailures = 0;
        for (const line of claimed.lines) this.start(line, claimed.claimedAt);
        if (this.claims.claimAgain(claimed, free)) this.wakeRequested = true;
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
      abandoned: false,
    };
    const webhookId = line.webhook_id;
    this.jobs.set(line.lease_token, job);
    this.claims.started(webhookId);
    job.done = this.run(job).finally(() => {
      this.jobs.delete(line.lease_token);
      this.claims.finished(webhookId);
      this.wake(false);
    });
  }

  /** Delivers the claimed line's head, then the next ones while RECORD_ATTEMPTS keeps the line. */
  private async run(job: Job): Promise<void> {
    for (let inARow = 1; ; inARow++) {
      // A borrowed slot is not kept across heads while others may be waiting for it.
      const keep =
        (inARow < HEADS_IN_A_ROW || this.jobs.size < this.config.workerConcurrency) &&
        !this.claims.overCap(job.line.webhook_id);
      const next = await this.deliverHead(job, keep);
      if (!next) return;
      job.line = next; // the same lease token, renewed by RECORD_ATTEMPTS
      if (!this.running || job.abandoned) {
        // Kept by a record sent before shutdown began: give the next head back at once rather
        // than leave it leased, unsent, until the lease runs out.
        await this.releases.release([{ line: next, head: next.sequence, delayMs: 0 }]);
        return;
      }
    }
  }

  private async deliverHead(job: Job, keep: boolean): Promise<ClaimedLine | undefined> {
    const { line } = job;
    try {
      if (line.body_problem) {
        return await this.recording.refuseUnsendable(job, line.body_problem, keep && this.running);
      }
      if (line.delivery_id === null || line.message_id === null || line.body === null) {
        await this.releases.skipMissingHead(job);
        return undefined;
      }
      const sent = await this.sending.send(job);
      if (!sent) return undefined;
      const { attempt, startedAt, result } = sent;
      // A renewal is fenced on this head: let it finish before the record moves the head on.
      await job.renewing;
      if (job.lost || job.abandoned) {
        if (job.lost) this.metrics.leaseLost();
        this.logger.warn(
          `result dropped, ${job.lost ?? 'released at shutdown'}`,
          fields(line, attempt),
        );
        return undefined;
      }
      return await this.recording.record(job, attempt, startedAt, result, keep && this.running);
    } catch (error) {
      // A bug, not a delivery failure: the lease lapses and another claim retries the head.
      this.logger.error(
        `unexpected error: ${(error as Error).stack ?? String(error)}`,
        fields(line),
      );
      return undefined;
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
    await settledWithin(this.listener.stop(), LISTENER_STOP_MS);
    await this.claiming;
    const inFlight = () => [...this.jobs.values()].map((job) => job.done);
    if (!(await settledWithin(Promise.allSettled(inFlight()), this.config.deliveryTimeoutMs))) {
      const left = [...this.jobs.values()];
      for (const job of left) {
        job.abandoned = true;
        job.controller.abort(new Error('worker shutting down'));
      }
      await this.releases.release(
        left.map((job) => ({ line: job.line, head: job.line.sequence, delayMs: 0 })),
      );
      this.logger.warn(`released ${left.length} unfinished lease(s)`);
      await settledWithin(Promise.allSettled(inFlight()), 1000);
    }
    this.logger.log('stopped');
  }
}
