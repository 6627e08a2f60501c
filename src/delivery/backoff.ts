/** Retry timing (DESIGN §4): pure functions, unit-tested in backoff.spec.ts. */

export interface BackoffPolicy {
  /** Delay after the n-th failure is factor^n seconds… */
  factor: number;
  /** …capped at this many seconds, as is any Retry-After. */
  maxSeconds: number;
}

/** Seconds to wait after the n-th failed attempt (n >= 1): factor^n, capped. */
export function backoffSeconds(failures: number, policy: BackoffPolicy): number {
  const delay = Math.pow(policy.factor, failures);
  return Number.isFinite(delay)
    ? Math.min(Math.max(delay, 0), policy.maxSeconds)
    : policy.maxSeconds;
}

/**
 * A Retry-After header in seconds from `now`: either delta-seconds ("120") or an HTTP date.
 * Undefined when absent or unreadable; a date in the past gives 0.
 */
export function parseRetryAfter(
  value: string | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, (at - now) / 1000);
}

/** Statuses whose Retry-After we honour. */
const RETRY_AFTER_STATUSES = new Set([429, 503]);

/**
 * The delay before the next attempt after the n-th failure. A 429 or 503 with a readable
 * Retry-After sets the delay (within the cap); anything else gets the exponential backoff.
 */
export function retryDelaySeconds(
  failures: number,
  policy: BackoffPolicy,
  response: { statusCode?: number; retryAfter?: string } = {},
  now: number = Date.now(),
): number {
  if (response.statusCode !== undefined && RETRY_AFTER_STATUSES.has(response.statusCode)) {
    const asked = parseRetryAfter(response.retryAfter, now);
    if (asked !== undefined) return Math.min(asked, policy.maxSeconds);
  }
  return backoffSeconds(failures, policy);
}
