import pg from 'pg';
import { AppConfig } from '../config/app-config.js';
import { CircuitBreakers } from './circuit-breaker.js';
import { CLAIM_LINES, ClaimedLine } from './delivery.sql.js';
import { DeliveryMetrics } from './delivery-metrics.js';
import { CLAIM_QUERY_TIMEOUT_MS, withQueryTimeout } from './job.js';

/** What one claim brought. */
export interface Claimed {
  lines: ClaimedLine[];
  /** When the claim was sent: the start of the lines' leases. */
  claimedAt: number;
  /** The webhooks the claim left out. */
  excluded: number[];
}

/**
 * The claim: due lines for the free slots, in one statement (CLAIM_LINES), shared fairly. A
 * webhook holds at most WORKER_CONCURRENCY_PER_WEBHOOK of the slots, and a webhook whose
 * destination's circuit breaker is open (circuit-breaker.ts) none; its lines are given back
 * untouched, due again when the breaker lets a probe through.
 */
export class Claims {
  /** Lines in flight per webhook id, for the per-webhook cap. */
  private readonly inFlight = new Map<number, number>();
  /** Webhooks whose destination's breaker was open when last seen: left out of claims. */
  private readonly blocked = new Map<number, string>();
  /**
   * A claim that left capped or blocked webhooks out found nothing: no other webhook had due
   * work then. Until something may have made more due (a NOTIFY, the poll, a retry timer), a
   * slot freeing up claims only with what it knows, instead of walking again past the due lines
   * of the webhooks left out, which can be many.
   */
  private othersIdle = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: AppConfig,
    private readonly metrics: DeliveryMetrics,
    private readonly breakers: CircuitBreakers,
    private readonly leaseMs: number,
  ) {}

  /** Something may have made more due (a NOTIFY, the poll, a retry timer). */
  newWork(): void {
    this.othersIdle = false;
  }

  /** Claims up to `free` due lines, leaving out the webhooks at their cap or blocked. */
  async claim(free: number): Promise<Claimed> {
    const { excluded, roomIds, rooms } = this.limits();
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
    return { lines: rows, claimedAt, excluded };
  }

  /** Whether to claim again at once, after the claimed lines were started. */
  claimAgain({ lines, excluded }: Claimed, free: number): boolean {
    if (lines.length === free) {
      // A full batch suggests more is due; a slot freeing up wakes us again anyway.
      return true;
    } else if (lines.length === 0 && excluded.length > 0) {
      this.othersIdle = true;
    } else if (!this.othersIdle && lines.some((line) => this.atCap(line.webhook_id))) {
      // A webhook reached its cap in this claim, which may have passed over other
      // webhooks' lines for its own: look again with it left out.
      return true;
    }
    return false;
  }

  /** A line of this webhook is in flight. */
  started(webhookId: number): void {
    this.inFlight.set(webhookId, (this.inFlight.get(webhookId) ?? 0) + 1);
  }

  /** A line of this webhook is no longer in flight. */
  finished(webhookId: number): void {
    const left = this.inFlight.get(webhookId)! - 1;
    if (left > 0) this.inFlight.set(webhookId, left);
    else this.inFlight.delete(webhookId);
  }

  /** Leaves the webhook out of claims while its destination's breaker is open. */
  block(webhookId: number, destination: string): void {
    this.blocked.set(webhookId, destination);
  }

  /**
   * The claim's limits: webhooks to leave out (at their cap, or blocked by an open breaker)
   * and the room left for the others that have lines in flight.
   */
  private limits(): { excluded: number[]; roomIds: number[]; rooms: number[] } {
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
}
