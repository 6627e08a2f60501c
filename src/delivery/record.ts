import { Logger } from '@nestjs/common';
import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { disableRefused, noteAttemptOutcome } from '../queue/webhook-state.js';
import { isThrottling, retryDelaySeconds, THROTTLING_LIMIT_SECONDS } from './backoff.js';
import {
  ClaimedLine,
  HELD_HEAD,
  Outcome,
  parseRows,
  RECORD_ATTEMPTS,
  RECORD_ATTEMPTS_ASYNC,
  RecordedAttempt,
  recordAttemptsValues,
  RecordRequest,
} from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { fields, Job, lostReason, withQueryTimeout, WRITE_QUERY_TIMEOUT_MS } from './job.js';
import { Leases } from './lease.js';
import { Releases } from './release.js';
import { ResultRecorder } from './result-recorder.js';
import { WebhookResult } from './webhook-sender.js';

/** A line whose address was refused is due again after this (meanwhile its webhook is disabled). */
const REFUSED_RELEASE_MS = 1000;

/**
 * Recording an attempt's outcome, fenced by the lease token and head (RECORD_ATTEMPTS), in
 * group commits; a record that keeps the line hands back its next head. Then the webhook's
 * health (auto-disable).
 */
export class Recording {
  /** Records results, those that finish together in one statement and commit. */
  private readonly recorder: ResultRecorder<RecordRequest, RecordedAttempt>;
  /** LOG_LEVEL=debug (or verbose): each delivery is logged. */
  private readonly debug: boolean;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: AppConfig,
    private readonly logger: Logger,
    private readonly metrics: DeliveryMetrics,
    private readonly leases: Leases,
    private readonly releases: Releases,
    /** Wakes the claim loop after `ms`: a retried head is due again then. */
    private readonly wakeAfter: (ms: number) => void,
  ) {
    this.debug = config.logLevel === 'debug' || config.logLevel === 'verbose';
    const recordAttempts = config.recordSynchronousCommit ? RECORD_ATTEMPTS : RECORD_ATTEMPTS_ASYNC;
    this.recorder = new ResultRecorder(
      async (requests, wait) => {
        const { rows } = await this.pool.query<{ row_json: string }>(
          withQueryTimeout(
            {
              text: recordAttempts,
              values: recordAttemptsValues(requests, leases.leaseMs, wait),
            },
            WRITE_QUERY_TIMEOUT_MS,
          ),
        );
        // They come in the lines' lock order.
        return parseRows<RecordedAttempt>(rows).sort((a, b) => a.nth - b.nth);
      },
      (row) => row.busy,
    );
  }

  /**
   * A head whose payload cannot be sent (body_problem): one attempt, recorded dead at once with
   * the reason, so its line moves on (or blocks, with on_exhausted = block). Retrying would
   * print the payload again on every claim, and it never gets smaller. Not a failure of the
   * webhook: its breaker and failure run are left alone.
   */
  async refuseUnsendable(
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
    return this.record(job, attempt, new Date(), result, keep, 'dead');
  }

  async record(
    job: Job,
    attempt: number,
    startedAt: Date,
    result: WebhookResult,
    keep: boolean,
    unsendable?: 'dead',
  ): Promise<ClaimedLine | undefined> {
    const { line } = job;
    if (result.refused && !unsendable) return this.refuseAddress(job, result.refused);
    const outcome = unsendable ?? this.outcomeOf(line, attempt, result);
    const delay =
      outcome === 'pending' || outcome === 'throttled'
        ? retryDelaySeconds(
            attempt,
            {
              factor: line.backoff_factor ?? this.config.backoffFactor,
              maxSeconds: this.config.backoffMaxSeconds,
            },
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
      responseBody: result.responseBody?.includes('\0')
        ? result.responseBody.replace(/\0/g, '')
        : result.responseBody,
      keep,
    };
    const sentAt = Date.now();
    // The statement is idempotent (fenced on the head as well as the token): retrying it after
    // an error that may have followed its commit cannot apply it twice.
    const row = await this.leases.withRetries(job, 'record attempt', () =>
      this.recorder.record(request),
    );
    if (row === undefined) return undefined;
    // Log text and fields only for what is logged: a delivery is logged at debug level only.
    const what = () =>
      `${result.ok ? `HTTP ${result.statusCode}` : result.error} in ${result.durationMs} ms`;
    const about = () => fields(line, attempt);
    if (!row.fenced) {
      if (row.still_held || row.recorded_before) {
        // An earlier run of this statement committed and its reply was lost. If it kept the
        // line, the line is still ours one head on: give it back so that head is claimed.
        this.logger.warn(`${what()}; already recorded by a try whose reply was lost`, about());
        if (outcome !== 'pending' && outcome !== 'throttled') await this.releaseHeld(line);
      } else {
        this.metrics.leaseLost();
        this.logger.warn(`${what()}; result dropped, ${lostReason(row.line_exists!)}`, about());
      }
      return undefined;
    }
    this.metrics.attemptRecorded(line.webhook_id, outcome, result.durationMs);
    // Throttling is neither a failure nor a success of the webhook (DESIGN §10).
    const disabled =
      unsendable || outcome === 'throttled'
        ? false
        : await this.noteWebhookHealth(line, result, row.webhook_failing === true);
    if (outcome === 'delivered') {
      if (this.debug) this.logger.debug(what(), about());
    } else if (outcome === 'dead') {
      this.logger.warn(`${what()}; dead-lettered after ${attempt} attempts`, about());
    } else {
      const throttled = outcome === 'throttled' ? ' (throttled: not counted as a retry)' : '';
      this.logger.warn(`${what()}; retry in ${delay.toFixed(3)} s${throttled}`, about());
      // Other workers find it by polling; this one wakes right on time.
      this.wakeAfter(delay * 1000);
    }
    if (row.lease_token === null) return undefined;
    if (disabled) {
      // Kept before the webhook was disabled: give the next head back untouched.
      await this.releases.release([{ line: row as ClaimedLine, head: row.sequence!, delayMs: 0 }]);
      return undefined;
    }
    job.leaseDeadline = sentAt + this.leases.leaseMs;
    return row as ClaimedLine;
  }

  /**
   * The attempt's outcome (DESIGN §4, §10). A throttling answer (429, or 503 with Retry-After)
   * waits without using the retry budget, for up to THROTTLING_LIMIT_SECONDS of uninterrupted
   * throttling of this head (throttled_seconds, from the database's clock); after that it is a
   * failure like any other. The budget is the webhook's max_retries (else MAX_RETRIES) failed
   * attempts: the attempts so far less the throttled ones.
   */
  private outcomeOf(line: ClaimedLine, attempt: number, result: WebhookResult): Outcome {
    if (result.ok) return 'delivered';
    const answer = { statusCode: result.statusCode ?? undefined, retryAfter: result.retryAfter };
    if (isThrottling(answer) && (line.throttled_seconds ?? 0) < THROTTLING_LIMIT_SECONDS) {
      return 'throttled';
    }
    const failures = attempt - (line.throttled_attempts ?? 0);
    return failures >= (line.max_retries ?? this.config.maxRetries) ? 'dead' : 'pending';
  }

  /**
   * DESIGN §10 "Refused addresses are not the receiver's fault": the address policy refused the
   * connection, so nothing was sent. No attempt is recorded and no retry used: the line goes back
   * untouched (due a moment later, by when the disable below has parked it), and the webhook is
   * disabled (`refused`, with what was refused in disabled_detail), keeping its backlog, as a
   * 410 disables it. PATCH {status: "active"} resumes it where it stopped. Should the disable
   * fail, the head is simply tried again then.
   */
  private async refuseAddress(job: Job, detail: string): Promise<undefined> {
    const { line } = job;
    await this.releases.release([{ line, head: line.sequence, delayMs: REFUSED_RELEASE_MS }]);
    try {
      if (await disableRefused(this.pool, line.webhook_id, detail)) {
        this.logger.warn(
          `webhook disabled: ${detail}; nothing sent, no retry used, its backlog is kept`,
          fields(line),
        );
      }
    } catch (error) {
      this.logger.warn(
        `the address was refused (${detail}) but the webhook could not be disabled (${(error as Error).message})`,
        fields(line),
      );
    }
    return undefined;
  }

  /**
   * Gives back the line our token still holds, at whatever head the lost run left it (the line's
   * next pending delivery, not necessarily head + 1), fenced on token and head as every release.
   */
  private async releaseHeld(line: ClaimedLine): Promise<void> {
    const { rows } = await this.pool.query<{ head: string }>(
      withQueryTimeout(
        { text: HELD_HEAD, values: [line.webhook_id, line.partition_key, line.lease_token] },
        WRITE_QUERY_TIMEOUT_MS,
      ),
    );
    if (rows.length > 0) await this.releases.release([{ line, head: rows[0].head, delayMs: 0 }]);
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
}
