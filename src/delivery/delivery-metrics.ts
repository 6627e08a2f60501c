import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Outcome } from './delivery.sql.js';
import { NotifyListener } from './notify-listener.js';

/** The label of a recorded attempt's outcome (the delivery's new status; pending = a retry). */
const OUTCOME_LABEL: Record<Outcome, string> = {
  delivered: 'delivered',
  pending: 'retry',
  dead: 'dead',
  throttled: 'throttled',
};

/**
 * The most distinct webhook_id values one worker gives pgwq_delivery_attempts_total. Past it,
 * attempts to webhooks not seen yet count under webhook_id="other", so a worker serving tens of
 * thousands of webhooks keeps its scrape (and Prometheus) at a few thousand series per outcome.
 */
export const WEBHOOK_LABEL_LIMIT = 2000;
export const OTHER_WEBHOOKS = 'other';

/**
 * What the claim loop reports about itself, as Prometheus metrics, and when it last claimed
 * (the worker's /health reads it). The loop calls these methods; nothing here touches the
 * database.
 */
@Injectable()
export class DeliveryMetrics {
  private readonly claimDuration: Histogram;
  private readonly attempts: Counter<'outcome' | 'webhook_id'>;
  /** The webhook ids with a label of their own (at most WEBHOOK_LABEL_LIMIT). */
  private readonly labelledWebhooks = new Set<string>();
  private readonly attemptDuration: Histogram<'outcome'>;
  /**
   * The counters' children by outcome and webhook id, found once: labels per attempt cost a
   * hash of the label set each time. As many as the webhook_id labels (at most WEBHOOK_LABEL_LIMIT and `other`) times four.
   */
  private readonly attemptCounters = new Map<string, { inc(): void }>();
  private readonly attemptDurations: Record<Outcome, { observe(seconds: number): void }>;
  private readonly leaseLosses: Counter;
  private countInFlight: () => number = () => 0;
  /** performance.now() of the last successful claim; the worker's start before the first. */
  private lastClaimAt = performance.now();

  constructor(registry: Registry, listener: NotifyListener) {
    const registers = [registry];
    this.claimDuration = new Histogram({
      name: 'pgwq_claim_duration_seconds',
      help: 'Time of one successful claim statement (due lines and their heads).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.attempts = new Counter({
      name: 'pgwq_delivery_attempts_total',
      help: `Recorded delivery attempts by webhook and outcome: delivered (2xx), retry (failed, tried again later), throttled (429 or 503 with Retry-After: waits without using the retry budget), dead (failed, dead-lettered). Past ${WEBHOOK_LABEL_LIMIT} webhooks per worker, new ones count as webhook_id="${OTHER_WEBHOOKS}".`,
      labelNames: ['outcome', 'webhook_id'],
      registers,
    });
    this.attemptDuration = new Histogram({
      name: 'pgwq_delivery_attempt_duration_seconds',
      help: 'Duration of recorded delivery attempts (the POST and reading the capped answer), by outcome.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.attemptDurations = {
      delivered: this.attemptDuration.labels({ outcome: OUTCOME_LABEL.delivered }),
      pending: this.attemptDuration.labels({ outcome: OUTCOME_LABEL.pending }),
      dead: this.attemptDuration.labels({ outcome: OUTCOME_LABEL.dead }),
      throttled: this.attemptDuration.labels({ outcome: OUTCOME_LABEL.throttled }),
    };
    this.leaseLosses = new Counter({
      name: 'pgwq_lease_losses_total',
      help: "Attempts whose result was dropped because the line's lease had passed to another worker.",
      registers,
    });
    const inFlight = () => this.countInFlight();
    new Gauge({
      name: 'pgwq_deliveries_in_flight',
      help: 'Deliveries this worker is sending now.',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    new Gauge({
      name: 'pgwq_listen_connected',
      help: '1 while the LISTEN connection is up; 0 while it reconnects (new work then waits for the poll).',
      registers,
      collect() {
        this.set(listener.connected ? 1 : 0);
      },
    });
  }

  /** The claim loop's count of deliveries in flight, read on each scrape. */
  trackInFlight(count: () => number): void {
    this.countInFlight = count;
  }

  inFlight(): number {
    return this.countInFlight();
  }

  /** Times a claim; call the returned function once it succeeded. */
  startClaim(): () => void {
    const observe = this.claimDuration.startTimer();
    return () => {
      observe();
      this.lastClaimAt = performance.now();
    };
  }

  /** Milliseconds since the last successful claim (or since the worker started). */
  msSinceClaim(): number {
    return performance.now() - this.lastClaimAt;
  }

  attemptRecorded(webhookId: number, outcome: Outcome, durationMs: number): void {
    const label = OUTCOME_LABEL[outcome];
    const webhook = this.webhookLabel(webhookId);
    const key = `${label} ${webhook}`;
    let counter = this.attemptCounters.get(key);
    if (!counter) {
      counter = this.attempts.labels({ outcome: label, webhook_id: webhook });
      this.attemptCounters.set(key, counter);
    }
    counter.inc();
    this.attemptDurations[outcome].observe(durationMs / 1000);
  }

  /** The webhook's own id while fewer than WEBHOOK_LABEL_LIMIT have one, else `other`. */
  private webhookLabel(webhookId: number): string {
    const id = String(webhookId);
    if (this.labelledWebhooks.has(id)) return id;
    if (this.labelledWebhooks.size >= WEBHOOK_LABEL_LIMIT) return OTHER_WEBHOOKS;
    this.labelledWebhooks.add(id);
    return id;
  }

  leaseLost(): void {
    this.leaseLosses.inc();
  }
}
