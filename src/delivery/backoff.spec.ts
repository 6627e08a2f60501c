import { backoffSeconds, parseRetryAfter, retryDelaySeconds } from './backoff.js';

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
});
