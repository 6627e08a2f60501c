import {
  backoffSeconds,
  isThrottling,
  jittered,
  parseRetryAfter,
  retryDelaySeconds,
} from './backoff.js';

const retryDelay = retryDelaySeconds;

describe('backoff', () => {
  const policy = { factor: 2, maxSeconds: 3600 };

  it('waits factor^n seconds after the n-th failure', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffSeconds(n, policy))).toEqual([2, 4, 8, 16, 32]);
  });

  it('caps the delay at maxSeconds, also when factor^n overflows', () => {
    expect(backoffSeconds(12, policy)).toBe(3600);
    expect(backoffSeconds(5000, { factor: 1000, maxSeconds: 60 })).toBe(60);
  });

  it('works with fractional factors', () => {
    expect(backoffSeconds(1, { factor: 1.5, maxSeconds: 100 })).toBeCloseTo(1.5);
    expect(backoffSeconds(3, { factor: 1.5, maxSeconds: 100 })).toBeCloseTo(3.375);
    expect(backoffSeconds(1, { factor: 0.2, maxSeconds: 100 })).toBeCloseTo(0.2);
    expect(backoffSeconds(2, { factor: 0.2, maxSeconds: 100 })).toBeCloseTo(0.04);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:30 GMT', now)).toBe(30);
    expect(parseRetryAfter('Mon, 31 Dec 2029 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });

  it('honours Retry-After on 429 and 503 only, within the cap', () => {
    const capped = { factor: 2, maxSeconds: 60 };
    const retryDelaySeconds = (
      n: number,
      policy: typeof capped,
      response: { statusCode?: number; retryAfter?: string },
      now = Date.now(),
    ) => retryDelay(n, policy, response, now, 0.5); // 0.5: the middle of the jitter
    expect(retryDelaySeconds(1, capped, { statusCode: 429, retryAfter: '10' })).toBe(10);
    expect(retryDelaySeconds(1, capped, { statusCode: 503, retryAfter: '7200' })).toBe(60);
    expect(retryDelaySeconds(1, capped, { statusCode: 500, retryAfter: '10' })).toBe(2);
    expect(retryDelaySeconds(3, capped, { statusCode: 429 })).toBe(8);
    expect(retryDelaySeconds(3, capped, { statusCode: 429, retryAfter: 'garbage' })).toBe(8);
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(
      retryDelaySeconds(
        1,
        capped,
        { statusCode: 503, retryAfter: 'Tue, 01 Jan 2030 00:00:05 GMT' },
        now,
      ),
    ).toBe(5);
  });

  it('spreads the backoff by ±10 % and no more, never past the cap', () => {
    expect(jittered(10, 0)).toBeCloseTo(9);
    expect(jittered(10, 0.5)).toBeCloseTo(10);
    expect(jittered(10, 0.999999)).toBeCloseTo(11);
    const seen = Array.from({ length: 2000 }, () => retryDelay(3, policy, { statusCode: 500 }));
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(8 * 0.9);
    expect(Math.max(...seen)).toBeLessThanOrEqual(8 * 1.1);
    // Spread, not constant: both ends of the band are reached.
    expect(Math.min(...seen)).toBeLessThan(8 * 0.92);
    expect(Math.max(...seen)).toBeGreaterThan(8 * 1.08);
    const capped = { factor: 2, maxSeconds: 60 };
    for (const random of [0, 0.5, 0.999999]) {
      const delay = retryDelay(6, capped, {}, Date.now(), random); // 64 s, capped
      expect(delay).toBeLessThanOrEqual(60);
      expect(delay).toBeGreaterThanOrEqual(60 * 0.9 - 1e-9);
    }
    // What the receiver asked for is not jittered.
    expect(retryDelay(1, capped, { statusCode: 429, retryAfter: '10' }, Date.now(), 0)).toBe(10);
  });

  it('tells throttling answers: 429 always, 503 only with a readable Retry-After', () => {
    expect(isThrottling({ statusCode: 429 })).toBe(true);
    expect(isThrottling({ statusCode: 429, retryAfter: '5' })).toBe(true);
    expect(isThrottling({ statusCode: 503, retryAfter: '5' })).toBe(true);
    expect(isThrottling({ statusCode: 503 })).toBe(false);
    expect(isThrottling({ statusCode: 503, retryAfter: 'soon' })).toBe(false);
    expect(isThrottling({ statusCode: 500, retryAfter: '5' })).toBe(false);
    expect(isThrottling({})).toBe(false);
  });
});
