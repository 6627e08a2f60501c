/** Retry timing (DESIGN §4, §10): pure functions, unit-tested in backoff.spec.ts. */

export interface BackoffPolicy {
  /** Delay after the n-th failure is factor^n seconds… */
  factor: number;
  /** …capped at this many seconds, as is any Retry-After. */
  maxSeconds: number;
}

/** Retry delays are spread by up to this share either way, so retries do not come in waves. */
export const JITTER = 0.1;

/**
 * How long a head may be throttled (429, or 503 with Retry-After) without using its retry
 * budget: after 24 hours of uninterrupted throttling such answers count as failures.
 */
export const THROTTLING_LIMIT_SECONDS = 24 * 3600;

/** Seconds to wait after the n-th failed attempt (n >= 1): factor^n, capped. */
export function backoffSeconds(failures: number, policy: BackoffPolicy): number {
  const delay = Math.pow(policy.factor, failures);
  return Number.isFinite(delay)
    ? Math.min(Math.max(delay, 0), policy.maxSeconds)
    : policy.maxSeconds;
}

/** `seconds` spread by ±JITTER; `random` in [0, 1) (Math.random by default). */
export function jittered(seconds: number, random: number = Math.random()): number {
  return seconds * (1 - JITTER + 2 * JITTER * random);
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
 * A throttling answer (DESIGN §10): a 429 (with or without Retry-After), or a 503 with a
 * readable Retry-After. Throttling is not failure: it waits without using the retry budget.
 */
export function isThrottling(
  response: { statusCode?: number; retryAfter?: string },
  now: number = Date.now(),
): boolean {
  if (response.statusCode === 429) return true;
  return response.statusCode === 503 && parseRetryAfter(response.retryAfter, now) !== undefined;
}

/**
 * The delay before the next attempt after the n-th attempt. A 429 or 503 with a readable
 * Retry-After sets the delay exactly as asked (within the cap); anything else gets the
 * exponential backoff with ±10 % jitter, within the cap.
 */
export function retryDelaySeconds(
  failures: number,
  policy: BackoffPolicy,
  response: { statusCode?: number; retryAfter?: string } = {},
  now: number = Date.now(),
  random: number = Math.random(),
): number {
  if (response.statusCode !== undefined && RETRY_AFTER_STATUSES.has(response.statusCode)) {
    const asked = parseRetryAfter(response.retryAfter, now);
    if (asked !== undefined) return Math.min(asked, policy.maxSeconds);
  }
  return Math.min(jittered(backoffSeconds(failures, policy), random), policy.maxSeconds);
}
