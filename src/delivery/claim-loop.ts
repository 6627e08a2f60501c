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
import { DATABASE_TIMEOUTS, settledWithin } from '../database/pool-options.js';
import { retryDelaySeconds } from './backoff.js';
import {
  BreakerOutcome,
  BreakerPermit,
  CircuitBreakers,
  destinationOf,
} from './circuit-breaker.js';
import {
  CLAIM_LINES,
  ClaimedLine,
  Outcome,
  RECORD_ATTEMPTS,
  RECORD_ATTEMPTS_ASYNC,
  RecordedAttempt,
  recordAttemptsValues,
  RecordRequest,
  RELEASE_LINES,
  RENEW_LEASE,
  RenewedLease,
  SKIP_MISSING_HEAD,
} from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { NotifyListener } from './notify-listener.js';
import { ResultRecorder } from './result-recorder.js';
import { noteAttemptOutcome } from '../queue/webhook-state.js';
import { DeliveryMetadata, metadataSignatureHeader, signatureHeader } from './signature.js';
import { WebhookResult, WebhookSender } from './webhook-sender.js';

/** One claimed line whose head is being delivered by this worker. */
interface Job {
  line: ClaimedLine;
  controller: AbortController;
  /**
   * Local time until which the lease is surely ours: the time the claim, keep or renewal was
   * sent plus the lease. The database wrote the expiry from its clock at the write, which is
   * later, so this errs on the safe side whatever the two clocks say.
   */
  leaseDeadline: number;
  /** A renewal in flight; the result is recorded only after it settled. */
  renewing?: Promise<void>;
  /** Why this worker no longer owns the line (record nothing), once it does not. */
  lost?: string;
  /** Shutdown released the lease: record nothing. */
  abandoned: boolean;
  done?: Promise<void>;
}

const CLAIM_RETRY_BASE_MS = 100;
const CLAIM_RETRY_MAX_MS = 10_000;

/**
 * Client-side limits of the loop's own queries, below the pool's (DATABASE_TIMEOUTS). A claim
 * waits on no lock (SKIP LOCKED), so an answer that has not come in this time is not coming:
 * the pool drops the connection and the loop retries on a fresh one instead of hanging on a
 * dead one (a black-holed connection otherwise waits for the kernel, many minutes).
 */
const CLAIM_QUERY_TIMEOUT_MS = 5_000;
/**
 * The same for the fenced writes (record, renewal, skip, release), which may wait on a
 * producer's lock on the line, up to the lock timeout. One that times out is retried or left to
 * lapse, which is safe because every one of them is idempotent.
 */
const WRITE_QUERY_TIMEOUT_MS = DATABASE_TIMEOUTS.lockMs + 5_000;
/** How long shutdown waits for the LISTEN connection to close. */
const LISTENER_STOP_MS = 2_000;

/**
 * How many heads of one line a worker delivers in a row before it hands the line back to the
 * claim queue: enough to save the claim round trip on a busy line, few enough that other due
 * lines still get their turn.
 */
const HEADS_IN_A_ROW = 20;

/**
 * A query with its own `query_timeout` (pg reads it per query; @types/pg lacks it). Every query
 * goes unnamed: the hot statements are PL/pgSQL functions (delivery.sql.ts), whose plans the
 * server session caches, so a named prepared statement would save nothing and would not pass a
 * transaction-mode pooler.
 */
function withQueryTimeout(config: pg.QueryConfig, ms: number): pg.QueryConfig {
  return Object.assign(config, { query_timeout: ms });
}

/**
 * The slack a lease keeps beyond one request: the round trip that took or renewed it, the
 * record after the request, timers that fire late.
 */
export function leaseMarginMs(deliveryTimeoutMs: number): number {
  return Math.max(1000, Math.round(deliveryTimeoutMs / 4));
}

/** A fresh lease: one request plus twice the margin. */
export function leaseMsFor(deliveryTimeoutMs: number): number {
  return deliveryTimeoutMs + 2 * leaseMarginMs(deliveryTimeoutMs);
}

/** A line given back to the claim queue without an attempt, due again after delayMs. */
interface Release {
  line: ClaimedLine;
  /** The head the line must still be at for the release to apply. */
  head: string;
  delayMs: number;
}

/**
 * The worker's engine: claims due lines (one per free slot, in one statement), POSTs each line's
 * head, and records the outcome fenced by the lease token. Woken by NOTIFY, by a poll timer, by
 * its own retry timers and whenever a slot frees up; it always claims from the table.
 *
 * Slots are shared fairly: a webhook holds at most WORKER_CONCURRENCY_PER_WEBHOOK of them, and
 * a webhook whose destination's circuit breaker is open (circuit-breaker.ts) none; its lines are
 * given back untouched, due again when the breaker lets a probe through.
 */
@Injectable()
export class ClaimLoop implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ClaimLoop.name);
  private readonly leaseMs: number;
  /** The lease a request needs left before it starts: the whole request plus the margin. */
  private readonly leaseNeededMs: number;
  private readonly jobs = new Map<string, Job>();
  /** Lines in flight per webhook id, for the per-webhook cap. */
  private readonly inFlight = new Map<number, number>();
  /** Webhooks whose destination's breaker was open when last seen: left out of claims. */
  private readonly blocked = new Map<number, string>();
  private readonly breakers: CircuitBreakers;
  /** Records results, those that finish together in one statement and commit. */
  private readonly recorder: ResultRecorder<RecordRequest, RecordedAttempt>;
  /**
   * A claim that left capped or blocked webhooks out found nothing: no other webhook had due
   * work then. Until something may have made more due (a NOTIFY, the poll, a retry timer), a
   * slot freeing up claims only with what it knows, instead of walking again past the due lines
   * of the webhooks left out, which can be many.
   */
  private othersIdle = false;
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
    this.leaseNeededMs = config.deliveryTimeoutMs + leaseMarginMs(config.deliveryTimeoutMs);
    this.breakers = new CircuitBreakers(config.deliveryTimeoutMs);
    const recordAttempts = config.recordSynchronousCommit ? RECORD_ATTEMPTS : RECORD_ATTEMPTS_ASYNC;
    this.recorder = new ResultRecorder(
      async (requests, wait) => {
        const { rows } = await this.pool.query<RecordedAttempt>(
          withQueryTimeout(
            { text: recordAttempts, values: recordAttemptsValues(requests, this.leaseMs, wait) },
            WRITE_QUERY_TIMEOUT_MS,
          ),
        );
        return rows.sort((a, b) => a.nth - b.nth); // they come in the lines' lock order
      },
      (row) => row.busy,
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
    if (newWork) this.othersIdle = false;
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
        const { excluded, roomIds, rooms } = this.claimLimits();
        const claimedAt = Date.now();
        const claimDone = this.metrics.startClaim();
        const { rows } = await this.pool.query<ClaimedLine>(
          withQueryTimeout(
            {
              text: CLAIM_LINES,
              values: [
                free,
                this.leaseMs,
                excluded,
                roomIds,
                rooms,
                this.config.workerConcurrencyPerWebhook,
              ],
            },
            CLAIM_QUERY_TIMEOUT_MS,
          ),
        );
        claimDone();
        if (this.claimFailures > 0) this.logger.log('database reachable again; claiming');
        this.claimFailures = 0;
        for (const line of rows) this.start(line, claimedAt);
        if (rows.length === free) {
          // A full batch suggests more is due; a slot freeing up wakes us again anyway.
          this.wakeRequested = true;
        } else if (rows.length === 0 && excluded.length > 0) {
          this.othersIdle = true;
        } else if (!this.othersIdle && rows.some((line) => this.atCap(line.webhook_id))) {
          // A webhook reached its cap in this claim, which may have passed over other
          // webhooks' lines for its own: look again with it left out.
          this.wakeRequested = true;
        }
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

  /**
   * The claim's limits: webhooks to leave out (at their cap, or blocked by an open breaker)
   * and the room left for the others that have lines in flight.
   */
  private claimLimits(): { excluded: number[]; roomIds: number[]; rooms: number[] } {
    for (const [webhook, destination] of this.blocked) {
      if (!this.breakers.isBlocked(destination)) this.blocked.delete(webhook);
    }
    const excluded = [...this.blocked.keys()];
    const roomIds: number[] = [];
    const rooms: number[] = [];
    for (const [webhook, lines] of this.inFlight) {
      if (this.blocked.has(webhook)) continue;
      if (this.atCap(webhook)) excluded.push(webhook);
      else {
        roomIds.push(webhook);
        rooms.push(this.config.workerConcurrencyPerWebhook - lines);
      }
    }
    return { excluded, roomIds, rooms };
  }

  private atCap(webhookId: number): boolean {
    return (this.inFlight.get(webhookId) ?? 0) >= this.config.workerConcurrencyPerWebhook;
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
    this.inFlight.set(webhookId, (this.inFlight.get(webhookId) ?? 0) + 1);
    job.done = this.run(job).finally(() => {
      this.jobs.delete(line.lease_token);
      const left = this.inFlight.get(webhookId)! - 1;
      if (left > 0) this.inFlight.set(webhookId, left);
      else this.inFlight.delete(webhookId);
      this.wake(false);
    });
  }

  /** Delivers the claimed line's head, then the next ones while RECORD_ATTEMPTS keeps the line. */
  private async run(job: Job): Promise<void> {
    for (let inARow = 1; ; inARow++) {
      const next = await this.deliverHead(job, inARow < HEADS_IN_A_ROW);
      if (!next) return;
      job.line = next; // the same lease token, renewed by RECORD_ATTEMPTS
      if (!this.running || job.abandoned) {
        // Kept by a record sent before shutdown began: give the next head back at once rather
        // than leave it leased, unsent, until the lease runs out.
        await this.release([{ line: next, head: next.sequence, delayMs: 0 }]);
        return;
      }
    }
  }

  private async deliverHead(job: Job, keep: boolean): Promise<ClaimedLine | undefined> {
    const { line } = job;
    try {
      if (line.body_problem) return await this.refuseUnsendable(job, line.body_problem, keep);
      if (line.delivery_id === null || line.message_id === null || line.body === null) {
        await this.skipMissingHead(job);
        return undefined;
      }
      const destination = destinationOf(line.url);
      const permit = this.breakers.tryStart(destination);
      if (!permit) {
        // Open breaker: nothing sent, no attempt counted, the head unchanged. The line is due
        // again when a probe may go, for whichever worker claims it.
        const delayMs = this.breakers.retryInMs(destination);
        this.blocked.set(line.webhook_id, destination);
        this.logger.debug(`not sent, ${destination} circuit open`, fields(line));
        await this.release([{ line, head: line.sequence, delayMs }]);
        return undefined;
      }
      let result: WebhookResult | undefined;
      const attempt = (line.attempts ?? 0) + 1;
      let startedAt = new Date();
      try {
        if (!(await this.leaseCoversRequest(job))) return undefined;
        startedAt = new Date();
        result = await this.send(job, attempt);
      } finally {
        this.requestEnded(job, destination, permit, result);
      }
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

  /**
   * A head whose payload cannot be sent (body_problem): one attempt, recorded dead at once with
   * the reason, so its line moves on (or blocks, with on_exhausted = block). Retrying would
   * print the payload again on every claim, and it never gets smaller. Not a failure of the
   * webhook: its breaker and failure run are left alone.
   */
  private async refuseUnsendable(
    job: Job,
    problem: string,
    keep: boolean,
  ): Promise<ClaimedLine | undefined> {
    const result: WebhookResult = {
      ok: false,
      statusCode: null,
      error: `not sent: ${problem}`,
      unreachable: false,
      responseBody: null,
      retryAfter: undefined,
      durationMs: 0,
    };
    const attempt = (job.line.attempts ?? 0) + 1;
    return this.record(job, attempt, new Date(), result, keep && this.running, 'dead');
  }

  /** POSTs the head, renewing the lease while the request runs. */
  private async send(job: Job, attempt: number): Promise<WebhookResult> {
    const { line } = job;
    const timestamp = Math.floor(Date.now() / 1000);
    const secrets = line.previous_secret ? [line.secret, line.previous_secret] : [line.secret];
    const body = line.body!;
    const metadata: DeliveryMetadata = {
      id: line.message_id!,
      timestamp: String(timestamp),
      topic: line.topic,
      partitionKey: line.partition_key,
      sequence: line.sequence,
      // Signed as "" until their headers are sent.
      previousSequence: '',
      eventType: '',
    };
    const headers = {
      'content-type': 'application/json',
      'webhook-id': metadata.id,
      'webhook-timestamp': metadata.timestamp,
      'webhook-signature': signatureHeader(secrets, metadata.id, timestamp, body),
      'webhook-topic': metadata.topic,
      'webhook-partition-key': metadata.partitionKey,
      'webhook-sequence': metadata.sequence,
      'webhook-metadata-signature': metadataSignatureHeader(secrets, metadata),
      'webhook-attempt': String(attempt),
    };
    const renewal = setInterval(
      () => {
        job.renewing ??= this.renew(job).finally(() => (job.renewing = undefined));
      },
      Math.floor(this.leaseMs / 3),
    );
    try {
      return await this.sender.send({ url: line.url, body, headers }, job.controller.signal);
    } finally {
      clearInterval(renewal);
    }
  }

  /** Tells the destination's breaker how a request ended, and logs when it opens or closes. */
  private requestEnded(
    job: Job,
    destination: string,
    permit: BreakerPermit,
    result: WebhookResult | undefined,
  ): void {
    const outcome: BreakerOutcome =
      result === undefined || job.lost || job.abandoned
        ? 'cancelled'
        : result.unreachable
          ? 'unreachable'
          : 'answered';
    const change = this.breakers.ended(destination, permit, outcome);
    if (change === 'opened') {
      this.blocked.set(job.line.webhook_id, destination);
      this.logger.warn(
        `${destination}: circuit open after repeated timeouts or connection failures ` +
          `(last: ${result?.error}); nothing is sent to it for ${this.breakers.retryInMs(destination)} ms`,
      );
    } else if (change === 'closed') {
      this.logger.log(`${destination}: answers again; circuit closed`);
    }
  }

  /**
   * A request may start only with enough lease left for all of it (DESIGN §3): a claim or keep
   * that waited on a lock, or a slow round trip, can leave less. Renews once when short; if the
   * lease is still short, or another worker has the line, the line goes back (or stays with
   * its owner) and nothing is sent.
   */
  private async leaseCoversRequest(job: Job): Promise<boolean> {
    if (job.leaseDeadline - Date.now() >= this.leaseNeededMs) return true;
    await this.renew(job);
    if (job.lost) {
      this.logger.warn(`not sent, ${job.lost}`, fields(job.line));
      return false;
    }
    if (job.leaseDeadline - Date.now() >= this.leaseNeededMs) return true;
    this.logger.warn(`not sent, the lease could not be renewed in time`, fields(job.line));
    await this.release([{ line: job.line, head: job.line.sequence, delayMs: 0 }]);
    return false;
  }

  private async record(
    job: Job,
    attempt: number,
    startedAt: Date,
    result: WebhookResult,
    keep: boolean,
    unsendable?: 'dead',
  ): Promise<ClaimedLine | undefined> {
    const { line } = job;
    const outcome: Outcome =
      unsendable ??
      (result.ok ? 'delivered' : attempt >= this.config.maxRetries ? 'dead' : 'pending');
    const delay =
      outcome === 'pending'
        ? retryDelaySeconds(
            attempt,
            { factor: this.config.backoffFactor, maxSeconds: this.config.backoffMaxSeconds },
            { statusCode: result.statusCode ?? undefined, retryAfter: result.retryAfter },
          )
        : 0;
    const request: RecordRequest = {
      webhookId: line.webhook_id,
      partitionKey: line.partition_key,
      leaseToken: line.lease_token,
      head: line.sequence,
      outcome,
      retryDelaySeconds: delay,
      deliveryId: line.delivery_id!,
      attempt,
      statusCode: result.statusCode,
      error: result.error,
      startedAt,
      durationMs: result.durationMs,
      responseBody: result.responseBody === null ? null : result.responseBody.replace(/\0/g, ''),
      keep,
    };
    const sentAt = Date.now();
    // The statement is idempotent (fenced on the head as well as the token): retrying it after
    // an error that may have followed its commit cannot apply it twice.
    const row = await this.withRetries(job, 'record attempt', () => this.recorder.record(request));
    if (row === undefined) return undefined;
    const what = `${result.ok ? `HTTP ${result.statusCode}` : result.error} in ${result.durationMs} ms`;
    const about = fields(line, attempt);
    if (!row.fenced) {
      if (row.still_held || row.recorded_before) {
        // An earlier run of this statement committed and its reply was lost. If it kept the
        // line, the line is still ours one head on: give it back so that head is claimed.
        this.logger.warn(`${what}; already recorded by a try whose reply was lost`, about);
        const next = String(BigInt(line.sequence) + 1n);
        if (outcome !== 'pending') await this.release([{ line, head: next, delayMs: 0 }]);
      } else {
        this.metrics.leaseLost();
        this.logger.warn(`${what}; result dropped, ${lostReason(row.line_exists!)}`, about);
      }
      return undefined;
    }
    this.metrics.attemptRecorded(outcome, result.durationMs);
    const disabled = unsendable
      ? false
      : await this.noteWebhookHealth(line, result, row.webhook_failing === true);
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
    if (disabled) {
      // Kept before the webhook was disabled: give the next head back untouched.
      await this.release([{ line: row as ClaimedLine, head: row.sequence!, delayMs: 0 }]);
      return undefined;
    }
    job.leaseDeadline = sentAt + this.leaseMs;
    return row as ClaimedLine;
  }

  /**
   * DESIGN §7 auto-disable: a 410 disables the webhook at once, a run of failures as long as
   * WEBHOOK_DISABLE_AFTER_SECONDS too, and a success ends the run (`failing`: the record saw one
   * running, after its line's lock; the claim's view may predate another line's first failure).
   * After the record, in its own statements: the attempt is recorded whatever happens here, and
   * an error only delays this until the next attempt.
   */
  private async noteWebhookHealth(
    line: ClaimedLine,
    result: WebhookResult,
    failing: boolean,
  ): Promise<boolean> {
    try {
      const disabled = await noteAttemptOutcome(
        this.pool,
        line.webhook_id,
        { ok: result.ok, statusCode: result.statusCode, wasFailing: failing },
        this.config.webhookDisableAfterSeconds,
      );
      if (disabled) {
        this.logger.warn(
          disabled === 'gone'
            ? 'webhook disabled: the receiver answered 410 Gone; its backlog is kept'
            : `webhook disabled: every attempt failed for ${this.config.webhookDisableAfterSeconds} s; its backlog is kept`,
          fields(line),
        );
      }
      return disabled !== undefined;
    } catch (error) {
      this.logger.warn(`could not note the webhook's health (${(error as Error).message})`);
      return false;
    }
  }

  private async skipMissingHead(job: Job): Promise<void> {
    const { line } = job;
    const skipped = await this.withRetries(job, 'skip missing head', () =>
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

  /**
   * Extends the lease on the current head. Marks the job lost, and aborts its request, once
   * the line is someone else's or the lease may have lapsed without a renewal.
   */
  private async renew(job: Job): Promise<void> {
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

  /** Gives lines back (RELEASE_LINES); on failure their leases simply lapse. */
  private async release(releases: Release[]): Promise<void> {
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
      await this.release(
        left.map((job) => ({ line: job.line, head: job.line.sequence, delayMs: 0 })),
      );
      this.logger.warn(`released ${left.length} unfinished lease(s)`);
      await settledWithin(Promise.allSettled(inFlight()), 1000);
    }
    this.logger.log('stopped');
  }
}

/** Why a fenced write found the line no longer ours. */
function lostReason(lineExists: boolean): string {
  return lineExists ? 'lease lost to another worker' : 'the line is gone (webhook deleted)';
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
