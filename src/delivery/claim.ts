import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { CircuitBreakers } from './circuit-breaker.js';
import { CLAIM_LINES, ClaimedLine, parseRows } from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { CLAIM_QUERY_TIMEOUT_MS, withQueryTimeout } from './job.js';

/** What one claim brought. */
export interface Claimed {
  lines: ClaimedLine[];
  /** When the claim was sent: the start of the lines' leases. */
  claimedAt: number;
  /** The webhooks the claim left out. */
  excluded: number[];
  /** Quick webhooks at their cap were let past it (others had no due work). */
  borrowing: boolean;
}

/**
 * A webhook's requests count as quick while each was answered within this (and none in flight
 * has been running longer): only such a webhook borrows slots beyond its cap.
 */
export function quickAnswerMs(deliveryTimeoutMs: number): number {
  return Math.min(1000, Math.max(1, Math.floor(deliveryTimeoutMs / 4)));
}

/** One webhook with lines in flight on this worker. */
interface Pace {
  /** Lines in flight (claimed, until their job ends). */
  lines: number;
  /** Start times (Date.now()) of its requests in flight. */
  requests: number[];
  /** Its last request ended with an answer within quickAnswerMs. */
  quick: boolean;
}

/**
 * The claim: due lines for the free slots, in one statement (CLAIM_LINES), shared fairly and
 * work-conserving.
 *
 * - Under contention a webhook holds at most WORKER_CONCURRENCY_PER_WEBHOOK of the slots: a
 *   claim leaves out the webhooks at their cap, so others' lines are reached first.
 * - When such a claim found nothing (no other webhook has due work: `othersIdle`), a webhook at
 *   its cap may borrow the free slots, all but one, while it answers quickly: its last request
 *   was answered within quickAnswerMs and none of its requests in flight has been running
 *   longer. So a lone webhook uses the worker, not half of it.
 * - A borrower that hangs: it stops borrowing as soon as its oldest request in flight is older
 *   than quickAnswerMs (its hung requests keep their slots until DELIVERY_TIMEOUT_MS), and the
 *   one slot a borrowing claim never takes is the reserve another webhook's work arriving in
 *   that moment gets at once. Borrowed slots come back with every answer: new work (a NOTIFY,
 *   the poll, a retry timer) ends `othersIdle`, and the next claims leave the borrower out
 *   (it is over its cap) until the others are served, so the cap bites again.
 * - A webhook whose destination's circuit breaker is open (circuit-breaker.ts) gets none: its
 *   lines are given back untouched, due again when the breaker lets a probe through.
 */
export class Claims {
  /** Per webhook with lines in flight: lines, requests, quickness. Gone when it has none. */
  private readonly paces = new Map<number, Pace>();
  /** Webhooks whose destination's breaker was open when last seen: left out of claims. */
  private readonly blocked = new Map<number, string>();
  /**
   * A claim that left capped or blocked webhooks out found nothing: no other webhook had due
   * work then. Until something may have made more due (a NOTIFY, the poll, a retry timer), a
   * slot freeing up claims only with what it knows, instead of walking again past the due lines
   * of the webhooks left out, which can be many; and quick webhooks at their cap may borrow.
   */
  private othersIdle = false;
  private readonly quickMs: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: AppConfig,
    private readonly metrics: DeliveryMetrics,
    private readonly breakers: CircuitBreakers,
    private readonly leaseMs: number,
  ) {
    this.quickMs = quickAnswerMs(config.deliveryTimeoutMs);
  }

  /** Something may have made more due (a NOTIFY, the poll, a retry timer). */
  newWork(): void {
    this.othersIdle = false;
  }

  /** Claims up to `free` due lines, leaving out the webhooks at their cap or blocked. */
  async claim(free: number): Promise<Claimed> {
    const { excluded, roomIds, rooms, borrowing } = this.limits(free);
    // A borrowing claim leaves one slot free: the reserve (see the class).
    const limit = borrowing ? free - 1 : free;
    const claimedAt = Date.now();
    const claimDone = this.metrics.startClaim();
    const { rows } = await this.pool.query<{ row_json: string }>(
      withQueryTimeout(
        {
          text: CLAIM_LINES,
          values: [
            limit,
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
    return { lines: parseRows<ClaimedLine>(rows), claimedAt, excluded, borrowing };
  }

  /** Whether to claim again at once, after the claimed lines were started. */
  claimAgain({ lines, excluded, borrowing }: Claimed, free: number): boolean {
    if (borrowing) {
      // It took what it may; an answer or new work wakes us again.
      return false;
    } else if (lines.length === free) {
      // A full batch suggests more is due; a slot freeing up wakes us again anyway.
      return true;
    } else if (lines.length === 0 && excluded.length > 0) {
      this.othersIdle = true;
      // Nobody else is waiting: let the quick ones at their cap borrow the free slots.
      return free - lines.length > 1 && excluded.some((id) => this.mayBorrow(id, Date.now()));
    } else if (!this.othersIdle && lines.some((line) => this.atCap(line.webhook_id))) {
      // A webhook reached its cap in this claim, which may have passed over other
      // webhooks' lines for its own: look again with it left out.
      return true;
    }
    return false;
  }

  /** A line of this webhook is in flight. */
  started(webhookId: number): void {
    const pace = this.paces.get(webhookId);
    if (pace) pace.lines += 1;
    else this.paces.set(webhookId, { lines: 1, requests: [], quick: false });
  }

  /** A line of this webhook is no longer in flight. */
  finished(webhookId: number): void {
    const pace = this.paces.get(webhookId)!;
    pace.lines -= 1;
    if (pace.lines <= 0) this.paces.delete(webhookId);
  }

  /** A request of this webhook starts now; hand the time back to requestEnded. */
  requestStarted(webhookId: number): number {
    const at = Date.now();
    this.paces.get(webhookId)?.requests.push(at);
    return at;
  }

  /** The request started at `at` ended; `answered`: with an HTTP answer. */
  requestEnded(webhookId: number, at: number, answered: boolean): void {
    const pace = this.paces.get(webhookId);
    if (!pace) return;
    const i = pace.requests.indexOf(at);
    if (i >= 0) pace.requests.splice(i, 1);
    pace.quick = answered && Date.now() - at <= this.quickMs;
  }

  /**
   * The webhook holds borrowed slots while others may have due work: its lines go back to the
   * claim after their head instead of being kept, so the slots reach the others.
   */
  overCap(webhookId: number): boolean {
    const lines = this.paces.get(webhookId)?.lines ?? 0;
    return !this.othersIdle && lines > this.config.workerConcurrencyPerWebhook;
  }

  /** Leaves the webhook out of claims while its destination's breaker is open. */
  block(webhookId: number, destination: string): void {
    this.blocked.set(webhookId, destination);
  }

  /**
   * The claim's limits: webhooks to leave out (at their cap, or blocked by an open breaker)
   * and the room left for the others that have lines in flight; while others are idle, the
   * room a quick webhook may borrow beyond its cap.
   */
  private limits(free: number) {
    for (const [webhook, destination] of this.blocked) {
      if (!this.breakers.isBlocked(destination)) this.blocked.delete(webhook);
    }
    const cap = this.config.workerConcurrencyPerWebhook;
    const now = Date.now();
    const lend = this.othersIdle && free > 1;
    const excluded = [...this.blocked.keys()];
    const roomIds: number[] = [];
    const rooms: number[] = [];
    let borrowing = false;
    for (const [webhook, { lines }] of this.paces) {
      if (this.blocked.has(webhook)) continue;
      if (lines < cap) {
        roomIds.push(webhook);
        rooms.push(cap - lines);
      } else if (lend && this.mayBorrow(webhook, now)) {
        borrowing = true;
        roomIds.push(webhook);
        rooms.push(free - 1);
      } else excluded.push(webhook);
    }
    return { excluded, roomIds, rooms, borrowing };
  }

  /** Answers quickly: its last request did, and none in flight has run longer. */
  private mayBorrow(webhookId: number, now: number): boolean {
    const pace = this.paces.get(webhookId);
    if (!pace?.quick || this.blocked.has(webhookId)) return false;
    return pace.requests.every((at) => now - at <= this.quickMs);
  }

  private atCap(webhookId: number): boolean {
    return (this.paces.get(webhookId)?.lines ?? 0) >= this.config.workerConcurrencyPerWebhook;
  }
}
