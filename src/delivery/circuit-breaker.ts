import { remembered } from '../common/remembered.js';

/**
 * Circuit breakers, one per destination (a webhook URL's origin: scheme, host and port), kept
 * by each worker for the requests it sends. A destination that keeps timing out or refusing
 * connections holds a worker's slots for whole timeouts and spends every line's retries on
 * nothing; once its breaker opens, the worker sends it nothing for a while and gives its lines
 * back untouched (no attempt counted, the head unchanged, so the order holds).
 *
 * The rule, after Convoy's (failure rate over a window, a minimum count, open for a while, then
 * one probe): within the last WINDOW_MS (counted in six slices), at least MIN_FAILURES requests
 * failed without an HTTP answer and they are at least FAILURE_RATIO of all requests that ended. Any HTTP answer, 5xx
 * included, counts as a success here: the host answered, and an answer frees the slot. Open, it
 * lets nothing through for OPEN_MS; then half-open, it lets one request through (the probe): an
 * answer closes it, a failure opens it again for twice as long (at most MAX_OPEN_MS).
 */
export const BREAKER_RULES = Object.freeze({
  windowMs: 60_000,
  minFailures: 5,
  failureRatio: 0.5,
  openMs: 30_000,
  maxOpenMs: 300_000,
});

/** How a request that a breaker let through ended. */
export type BreakerOutcome = 'answered' | 'unreachable' | 'cancelled';

/** A permit from tryStart: the one probe of a half-open breaker, or an ordinary request. */
export type BreakerPermit = 'probe' | 'request';

const BUCKETS = 6;

interface Destination {
  /** Requests that ended, per WINDOW_MS / BUCKETS slice of time: [slice, answered, failed]. */
  buckets: [number, number, number][];
  /** 0 while closed; while open, when the probe may go. */
  openUntil: number;
  openMs: number;
  probing: boolean;
}

export class CircuitBreakers {
  private readonly destinations = new Map<string, Destination>();

  /** `probeMs`: how long a probe may take (the request timeout), to pace the waiting lines. */
  constructor(
    private readonly probeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * May a request to `destination` start now? A permit for a closed breaker, and for the one
   * probe of an open one whose time is up; every permit must be handed back to `ended`.
   */
  tryStart(destination: string): BreakerPermit | undefined {
    const d = this.destinations.get(destination);
    if (!d || d.openUntil === 0) return 'request';
    if (this.now() < d.openUntil || d.probing) return undefined;
    d.probing = true;
    return 'probe';
  }

  /** Whether tryStart would refuse `destination` now. */
  isBlocked(destination: string): boolean {
    const d = this.destinations.get(destination);
    return d !== undefined && d.openUntil !== 0 && (this.now() < d.openUntil || d.probing);
  }

  /** Milliseconds until a request to a blocked destination may be tried again. */
  retryInMs(destination: string): number {
    const d = this.destinations.get(destination);
    if (!d || d.openUntil === 0) return 0;
    return Math.max(d.openUntil - this.now(), d.probing ? this.probeMs : 0);
  }

  /** Records how a permitted request ended; says when that opened or closed the breaker. */
  ended(
    destination: string,
    permit: BreakerPermit,
    outcome: BreakerOutcome,
  ): 'opened' | 'closed' | undefined {
    const tracked = this.destinations.get(destination);
    // An answer from a destination with no failure in the window leaves nothing to remember:
    // the common case, decided without building its window only to drop it again.
    if (!tracked && permit === 'request' && outcome !== 'unreachable') return undefined;
    const d = tracked ?? this.track(destination);
    if (permit === 'probe') {
      d.probing = false;
      if (outcome === 'cancelled') return undefined;
      if (outcome === 'answered') {
        this.destinations.delete(destination);
        return 'closed';
      }
      d.openMs = Math.min(d.openMs * 2, BREAKER_RULES.maxOpenMs);
      d.openUntil = this.now() + d.openMs;
      return 'opened';
    }
    // Requests sent before the breaker opened still end while it is open: they change nothing.
    if (outcome === 'cancelled' || d.openUntil !== 0) return undefined;
    const slice = Math.floor(this.now() / (BREAKER_RULES.windowMs / BUCKETS));
    d.buckets = d.buckets.filter(([s]) => s > slice - BUCKETS);
    let bucket = d.buckets.find(([s]) => s === slice);
    if (!bucket) d.buckets.push((bucket = [slice, 0, 0]));
    bucket[outcome === 'answered' ? 1 : 2] += 1;
    const answered = d.buckets.reduce((n, b) => n + b[1], 0);
    const failed = d.buckets.reduce((n, b) => n + b[2], 0);
    if (failed === 0) {
      this.destinations.delete(destination); // a healthy destination costs no memory
      return undefined;
    }
    if (
      failed >= BREAKER_RULES.minFailures &&
      failed >= BREAKER_RULES.failureRatio * (answered + failed)
    ) {
      d.buckets = [];
      d.openMs = BREAKER_RULES.openMs;
      d.openUntil = this.now() + d.openMs;
      return 'opened';
    }
    return undefined;
  }

  private track(destination: string): Destination {
    const d: Destination = { buckets: [], openUntil: 0, openMs: 0, probing: false };
    this.destinations.set(destination, d);
    return d;
  }
}

/** The breaker key of a webhook URL: its origin (scheme, host, port). */
export const destinationOf = remembered((url) => {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
});
